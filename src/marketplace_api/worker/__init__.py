"""The worker process: the periodic tasks (`tasks`), the retention they run (`retention`) and the
supervised worker loop (`runner`). It sits above every domain (its tasks call them); only the CLI
and the app factory import it."""
