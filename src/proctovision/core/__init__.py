"""The core every layer stands on: the error type that means bad input, atomic file writes, task definitions,
typed run configs, languages (Babel catalogues), table helpers, the Rich console, CPU allocator settings and
the decision rule (temperature, threshold) that training, scoring, prediction and serving all apply, and what
both web apps share: hosts and same-origin rules, the error body, the security-headers middleware (plain ASGI)."""
