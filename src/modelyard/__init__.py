"""modelyard: route each request to the cheapest model in your stack that is good enough."""
