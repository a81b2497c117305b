"""Assets of the web demo, shipped as package data.

``static/threadline-client.js`` is the TypeScript client
(``clients/typescript``) bundled into one ES module by ``npm run ship``;
``tests/clients/test_typescript.py`` checks that it matches a fresh build.
Read it with ``importlib.resources.files("threadline.demo") /
"static/threadline-client.js"``.
"""
