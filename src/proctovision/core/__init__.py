"""The core every layer stands on: the error type that means bad input, atomic file writes, task definitions,
typed run configs, languages (Babel catalogues), table helpers, the Rich console, CPU allocator settings and
the decision rule (temperature, threshold) that training, scoring, prediction and serving all apply, and what the two
web apps share without a web framework (hosts and same-origin rules, the error body, the request body limit, the
security-headers middleware)."""
