"""The operator console: a read-only web page served on ``server.http_port`` (see README "Operator console").

``settings`` (the ``console`` section), ``health`` (stream health and latest frames, a pipeline observer) and
``http`` (the aiohttp server and the page in ``static/``).
"""
