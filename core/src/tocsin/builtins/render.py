"""The built-in `render_notification`: titles and bodies from the sandboxed templates (runs last).

A plugin that wants to word notifications its own way implements `render_notification` too and returns a
Notification; pluggy calls it first, and this implementation only runs when no plugin answered.
"""

from __future__ import annotations

from tocsin.hookspecs import hookimpl
from tocsin.models import Notification
from tocsin.notify.templates import context_for, current_render, overrides, rendered


@hookimpl(trylast=True)
def render_notification(monitor, notification: Notification, channel: str) -> Notification | None:
    """Render the message being dispatched, or a lone draft (no title, no body) with the config's templates.

    A notification that already has its text, outside a dispatch, is left alone (None).
    """
    context = current_render.get()
    if context is None:
        if notification.title or notification.body:
            return None
        context = context_for(notification, channel=channel)
        if monitor is not None:
            rules = {notification.alert.rule} if notification.alert is not None else set()
            context.title_template, context.body_template = overrides(monitor.config, channel, rules)
    if monitor is not None and not context.rules:  # each alert shows its rule's condition beside its value
        context.rules = {rule.name: rule for rule in monitor.config.alerting.rules}
    return rendered(notification, context)
