"""Subscriptions: create, cancel, change, migrate, edit, add-ons, entitlement provisioning."""
