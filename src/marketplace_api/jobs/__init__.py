"""Background jobs on procrastinate (a PostgreSQL-backed queue): the app and its tasks (`app`,
`tasks`), enqueueing inside a business transaction (`enqueue`), and the worker (`worker`)."""
