"""Reports read from the ledger and the rows it points at: a payment's history, a vendor's
statement, the platform summary. Above the domains; only the routers import it."""
