# rerankd in a container. CPU by default (PyTorch's CPU wheels: no CUDA libraries in the image):
#   docker build -t rerankd .
#   docker run --rm rerankd rank -m tiny-random -q "capital of China" "Beijing is the capital." "Gravity."
#   docker run --rm -p 8000:8000 -v rerankd-models:/models rerankd serve -m Qwen/Qwen3-Reranker-0.6B
# CUDA (the CUDA build of torch from the package index; run with --gpus all):
#   docker build --build-arg TORCH=cuda -t rerankd:cuda .
ARG PYTHON=3.11
FROM python:${PYTHON}-slim

ARG TORCH=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=server,ui

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/models/hf \
    RERANKD_CACHE=/models/rerankd \
    RERANKD_HOST=0.0.0.0 \
    RERANKD_PORT=8000

WORKDIR /app
# jemalloc: `rerankd serve` re-executes itself with it preloaded, so RSS stays flat under traffic.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
# torch first, in its own layer: it is the big one and changes least.
RUN case "$TORCH" in \
      cpu) pip install --index-url "$TORCH_CPU_INDEX" --extra-index-url https://pypi.org/simple "torch==$TORCH_VERSION" ;; \
      cuda) pip install "torch==$TORCH_VERSION" ;; \
      *) echo "TORCH must be cpu or cuda" >&2; exit 2 ;; \
    esac
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[$EXTRAS]" && useradd --create-home --uid 1000 rerankd && mkdir -p /models \
    && chown rerankd /models
USER rerankd
# The smoke-test model, built once into the image, so that `rank -m tiny-random` works offline at once.
RUN rerankd download tiny-random >/dev/null

VOLUME ["/models"]
EXPOSE 8000
ENTRYPOINT ["rerankd"]
CMD ["serve", "--model", "Qwen/Qwen3-Reranker-0.6B"]
