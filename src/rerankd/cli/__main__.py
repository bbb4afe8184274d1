"""`python -m rerankd.cli`: the same as the `rerankd` command."""

from rerankd.cli import main

main()
