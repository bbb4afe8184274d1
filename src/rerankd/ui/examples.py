"""The examples under the form: one click fills it and ranks (Chinese, English, code, across languages)."""

from __future__ import annotations

from dataclasses import dataclass

from rerankd.templates import DEFAULT_INSTRUCTION


@dataclass(frozen=True)
class Example:
    label: str
    query: str
    documents: str
    instruction: str


EXAMPLES: list[Example] = [
    Example(
        "中文 · 如何实现Python中的异步爬虫?",
        "如何实现Python中的异步爬虫?",
        "\n".join(
            [
                "requests 是一个简单易用的 HTTP 库,requests.get() 会同步下载网页,每个请求都会阻塞直到响应返回。",
                "用 asyncio 和 aiohttp 实现异步爬虫:用 async def 定义协程,通过 aiohttp.ClientSession 并发发送请求,"
                "再用 asyncio.gather 同时抓取多个网页。",
                "pandas 是数据分析库,DataFrame 可以读取 CSV 文件并按列分组统计。",
            ]
        ),
        DEFAULT_INSTRUCTION,
    ),
    Example(
        "English RAG · What causes the seasons?",
        "What causes the seasons on Earth?",
        "\n".join(
            [
                "The Moon's phases come from how much of its sunlit half we see from Earth during its orbit.",
                "Seasons are caused by the 23.4° tilt of Earth's axis: each hemisphere leans toward the Sun "
                "for part of the year and receives more direct sunlight and longer days.",
                "Earth's orbit is slightly elliptical, but its distance from the Sun changes too little to "
                "cause summer and winter; the closest approach is in January.",
                "Photosynthesis converts light energy into chemical energy stored in glucose.",
            ]
        ),
        "Given a question, retrieve passages that answer it",
    ),
    Example(
        "Code search · reverse a linked list",
        "reverse a singly linked list in python",
        "\n".join(
            [
                "def reverse_string(s: str) -> str: return s[::-1]",
                "def reverse_list(head): prev = None; "
                "while head: head.next, prev, head = prev, head, head.next; return prev",
                "class Node: def __init__(self, value, next=None): self.value, self.next = value, next",
                "sorted(items, key=lambda x: x.priority, reverse=True)",
            ]
        ),
        "Given a code search query, retrieve code snippets that implement it",
    ),
    Example(
        "Deutsch → many languages · Eiffelturm",
        "Wie hoch ist der Eiffelturm?",
        "\n".join(
            [
                "La tour Eiffel mesure 330 mètres de hauteur avec ses antennes.",
                "The Eiffel Tower was built for the 1889 World's Fair in Paris.",
                "東京タワーの高さは333メートルです。",
                "Der Kölner Dom ist eine römisch-katholische Kathedrale in Köln.",
            ]
        ),
        "Given a question, retrieve passages in any language that answer it",
    ),
]
