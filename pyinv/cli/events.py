"""Events: the recent ones (`events`), following them as JSON lines (`events --follow`), delivering
them to a webhook (`events deliver`), a consumer's position (`events consumers`, `events ack`) and
retention (`events purge`). The reading loop and the webhook are pyinv.events."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click

from .. import events as event_stream
from .context import HelpGroup, emit, emit_page, example, json_option, list_options, notice, state
from .output import EVENT_COLUMNS, EVENT_CONSUMER_COLUMNS, to_json
from .params import DURATION


def _follow_options(function: Any) -> Any:
    function = click.option("--poll", "poll_seconds", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True,
                            metavar="SECONDS",
                            help="Read again after this long without a notification.")(function)
    function = click.option("--batch", "batch_size", type=click.IntRange(1, 10000), default=100, show_default=True,
                            metavar="N", help="Events read per call.")(function)
    function = click.option("--once", is_flag=True,
                            help="Stop when nothing is left to read (instead of waiting for more).")(function)
    return click.option("--max-events", type=click.IntRange(min=1), metavar="N",
                        help="Stop after this many events.")(function)


@example("pyinv events --limit 20", "pyinv events --follow --consumer erp",
         "pyinv events deliver --url https://erp.example/hooks/stock --secret $SECRET")
@click.group(cls=HelpGroup, invoke_without_command=True)
@click.option("--follow", is_flag=True,
              help="Print events as JSON lines as they happen (SIGTERM/Ctrl-C: stop); with --consumer, "
                   "resume after its last acknowledged event and acknowledge each batch printed.")
@click.option("--consumer", metavar="NAME", help="With --follow: the consumer whose position to resume and save.")
@click.option("--after-id", type=click.IntRange(min=0), default=0, metavar="ID",
              help="With --follow and no --consumer: start after this event (default: the oldest kept).")
@_follow_options
@click.option("--type", "event_type", metavar="TYPE",
              help="Only events of this type, e.g. reservation.expired (with --follow the others are skipped, "
                   "and acknowledged too).")
@click.option("--sku", help="Only events of this item.")
@click.option("--location", help="Only events at this location.")
@list_options
@click.pass_context
def events(ctx: click.Context, follow: bool, consumer: str | None, after_id: int, max_events: int | None,
           once: bool, batch_size: int, poll_seconds: float, event_type: str | None, sku: str | None,
           location: str | None, limit: int, offset: int) -> None:
    """Events at your locations: stock movements, hold changes, adjustments, lots and alerts.

    Without --follow, the latest events as a table (--json: a list). With --follow, every event from
    the consumer's position on, one JSON object per line, waiting for new ones (woken by the
    pyinv_events notification, or every --poll seconds): a restarted follower with the same
    --consumer goes on after the last batch it acknowledged, so nothing is lost or printed twice
    unless it stopped between printing a batch and acknowledging it."""
    if ctx.invoked_subcommand is not None:
        return
    if not follow:
        if consumer is not None:
            raise click.UsageError("--consumer goes with --follow (or `pyinv events ack`)")
        emit_page(state().inventory().events, limit, offset, EVENT_COLUMNS, empty="no events", latest=True,
                  type=event_type, sku=sku, location=location)
        return
    current = state()
    follower = event_stream.Follower(current.inventory(), current.connect(), consumer=consumer,
                                     after_id=0 if consumer else after_id, batch_size=batch_size,
                                     poll_seconds=poll_seconds)

    def handle(event: Any) -> None:
        wanted = {"type": event_type, "sku": sku, "location": location}
        if any(value is not None and getattr(event, name) != value for name, value in wanted.items()):
            return
        sys.stdout.write(event_stream.event_json(event) + "\n")
        sys.stdout.flush()

    try:
        with follower.signals_stop():
            follower.run(handle, max_events=max_events, once=once)
    finally:
        if follower.listener is not None:
            follower.listener.close()


@example("pyinv events deliver --url http://127.0.0.1:8080/hook --secret s3cret --consumer erp")
@events.command("deliver")
@click.option("--url", required=True, help="The webhook: each event is POSTed to it as JSON.")
@click.option("--secret", required=True, envvar="PYINV_WEBHOOK_SECRET",
              help="Shared secret of the X-Pyinv-Signature header: sha256=<hex HMAC-SHA256 of the body> "
                   "(also PYINV_WEBHOOK_SECRET).")
@click.option("--consumer", default="webhook", show_default=True, metavar="NAME",
              help="Consumer whose position to resume and save (one per webhook).")
@_follow_options
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True, metavar="SECONDS",
              help="Give up one attempt after this long.")
@click.option("--max-delay", type=click.FloatRange(0.01, 3600), default=60.0, show_default=True, metavar="SECONDS",
              help="Longest wait between attempts (the backoff doubles from 0.5 s up to this, with jitter).")
@json_option
def events_deliver(url: str, secret: str, consumer: str, max_events: int | None, once: bool, batch_size: int,
                   poll_seconds: float, timeout: float, max_delay: float) -> None:
    """Post every event to a webhook, at least once, signed; retry until it answers 2xx.

    Each event goes as one POST (body: the event as JSON; headers X-Pyinv-Event-Id,
    X-Pyinv-Event-Type and X-Pyinv-Signature: sha256=<hex HMAC-SHA256 of the body with --secret>).
    Anything but 2xx is retried with exponential backoff and jitter until it is accepted; only then is
    the event acknowledged for --consumer, so a restart resumes after the last one accepted. Verify
    the signature on the receiving side and treat X-Pyinv-Event-Id as the key that makes a repeat
    harmless. Logs one line per attempt on stderr (JSON with --json)."""
    current = state()
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("the URL must start with http:// or https://", param_hint="--url")
    as_json = current.json

    def log(message: str, fields: dict[str, Any]) -> None:
        click.echo(to_json({**fields, "message": message}).replace("\n", "") if as_json else message, err=True)

    follower = event_stream.Follower(current.inventory(), current.connect(), consumer=consumer,
                                     batch_size=batch_size, poll_seconds=poll_seconds)
    webhook = event_stream.Webhook(url, secret, timeout=timeout, max_delay=max_delay, log=log)
    try:
        with follower.signals_stop():
            delivered = event_stream.deliver(follower, webhook, max_events=max_events, once=once)
    finally:
        if follower.listener is not None:
            follower.listener.close()
    notice(f"delivered {delivered} event{'s' if delivered != 1 else ''} to {url}")


@example("pyinv events consumers")
@events.command("consumers")
@json_option
def events_consumers() -> None:
    """Your event consumers (unscoped admins: all) and the last event each acknowledged."""
    emit(state().inventory().event_consumers(), EVENT_CONSUMER_COLUMNS, empty="no consumers")


@example("pyinv events ack erp 1234")
@events.command("ack")
@click.argument("consumer")
@click.argument("up_to_id", type=click.IntRange(min=0))
@json_option
def events_ack(consumer: str, up_to_id: int) -> None:
    """Acknowledge every event up to UP_TO_ID for CONSUMER (creates it; never moves back)."""
    emit(state().inventory().ack_events(consumer, up_to_id), EVENT_CONSUMER_COLUMNS)


@example("pyinv events purge", "pyinv events purge --older-than 7d")
@events.command("purge")
@click.option("--older-than", type=DURATION, metavar="DURATION",
              help="Delete events older than this (default: the event_retention setting, 30 days).")
@json_option
def events_purge(older_than: timedelta | None) -> None:
    """Delete old events (the maintenance runner does this daily); scheduler or unscoped admin."""
    deleted = state().inventory().purge_events(older_than)
    if state().json:
        click.echo(to_json({"deleted": deleted}))
    else:
        click.echo(f"deleted {deleted} event{'s' if deleted != 1 else ''}")
