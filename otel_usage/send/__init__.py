"""Sending: the outbox's rules, the phases of one run, and the HTTP transport.

:mod:`.uploader` builds due weeks into the outbox and sends them (erasures first), in the
foreground or on a background thread; :mod:`.retry` says what an answer means for the next
attempt; :mod:`.transport` hands one request to the server (or fetches one document of the public
statistics, with the same TLS settings) and is the only module that imports the OTLP exporter
(only when it sends or fetches).
"""
