"""The background job queue on procrastinate (a PostgreSQL-backed queue): the app (`app`), what a
task runs with (`context`) and enqueueing inside a business transaction (`enqueue`). Domains import
this package to defer work; the periodic tasks and the worker process live in `worker/`."""
