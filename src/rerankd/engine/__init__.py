"""The serving engine: an asyncio dynamic batcher in front of one scorer."""
