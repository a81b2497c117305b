"""Sans-I/O core: codecs and rules. Standard library only, no asyncio, no clock."""
