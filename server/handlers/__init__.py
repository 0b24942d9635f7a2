"""HTTP handlers: decode the request, call a service, write the answer."""
