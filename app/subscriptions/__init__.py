"""Subscriptions: recurring checks that ask a source what is new and start ordinary jobs for it.

A subscription is not a job. ``SubscriptionService`` keeps them (SQLite or Redis), runs a check
(``checks``), records its outcome, and ``SubscriptionScheduler`` runs the due ones every tick.
"""
