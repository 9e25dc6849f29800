"""The backchannel authentication endpoint's service: parameters, signed requests, abuse controls, timing.

``service.start_authentication`` is the one entry point; the view in ``views.bc_authorize`` only adapts HTTP.
"""
