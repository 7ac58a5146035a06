"""Clients of the services we call (Stripe). Domain code imports them from here, never the SDKs."""
