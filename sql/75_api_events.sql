-- Layer 7, the public API: reading, acknowledging and purging events.

create function inventory_api.read_events(consumer text default null, max_events integer default 100,
                                          after_id bigint default null)
returns setof inventory_api.event
language sql stable
set search_path = ''
begin atomic
  select * from inventory.read_events(read_events.consumer, read_events.max_events, read_events.after_id);
end;

comment on function inventory_api.read_events(text, integer, bigint) is
'Up to max_events (1-10000) events after the consumer''s last acknowledged one (after_id: after that event instead), at the caller''s locations, in order.
Nothing is skipped: an event whose transaction committed after a later id was read still comes, because only events of transactions that have ended (older than the oldest transaction of this database still running) are returned, in (transaction, id) order; a long-running transaction in this database delays them until it ends. Then acknowledge the last id with ack_events. A consumer belongs to who created it (PERMISSION_DENIED for others but unscoped admins).';

create function inventory_api.ack_events(consumer text, up_to_id bigint)
returns inventory_api.event_consumer
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.ack_events(ack_events.consumer, ack_events.up_to_id);
end;

comment on function inventory_api.ack_events(text, bigint) is
'Record that consumer has processed every event read_events returned up to and including up_to_id (the next read_events starts after it). Creates the consumer when new (owned by the caller); never moves a position back (a repeated or late ack changes nothing). INVALID_ARGUMENT for an id read_events could not have returned.';

create function inventory_api.purge_events(older_than interval default null)
returns bigint
language sql volatile
set search_path = ''
begin atomic
  select inventory.purge_events(purge_events.older_than);
end;

comment on function inventory_api.purge_events(interval) is
'Delete events older than older_than (default settings.event_retention, 30 days); returns how many. Retention wins over consumers: an event a consumer has not acknowledged is deleted too once old enough. The scheduler (or an unscoped admin), daily; returns 0 while another run is in progress.';
