"""Serving PersonaFuse over HTTP: the OpenAI-compatible protocol, the FastAPI app, Ray Serve.

``protocol`` needs only pydantic (the client imports it); ``app`` needs FastAPI and uvicorn
(``pip install 'persona-agents[serve]'``); ``ray_app`` needs Ray Serve (the ``ray`` extra).
"""
