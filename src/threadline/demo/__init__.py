"""The web demo of ``threadline demo``: pages, a demo-only sign-in, an AI.

- :mod:`.app`: :class:`~threadline.demo.app.DemoApp`, the normal server plus
  the pages (``/demo``, ``/demo/agent``, ``/demo/supervisor``) and
  ``POST /demo/api/sign-in``, which exists only here;
- :mod:`.ai`: the order-support agent on :class:`threadline.agent.Worker`
  (deterministic, or an OpenAI-compatible model with ``THREADLINE_LLM_*``);
- :mod:`.tokens`: a secret per run and a token per sign-in;
- :mod:`.command`: the ``threadline demo`` subcommand;
- ``static/``: the pages, plain HTML, CSS and ES modules with no build step.
  ``static/threadline-client.js`` is the TypeScript client
  (``clients/typescript``) bundled into one ES module by ``npm run ship``;
  ``tests/clients/test_typescript.py`` checks that it matches a fresh build.
  Read it with ``importlib.resources.files("threadline.demo") /
  "static/threadline-client.js"``.

Importing this package imports nothing else: the server and the agent load
when the demo runs. See ``docs/howto/demo.md``.
"""
