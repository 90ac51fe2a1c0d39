"""Every Redis key name audiencehub uses, built here and nowhere else.

Layout (``p`` is the configured prefix, ``k`` a shard number)::

    p:meta:shards                 string  shard count the data was written with
    p:{reg}:version               string  bumped on every audience/job/auth change
    p:{reg}:audiences             hash    audience id -> definition (JSON)
    p:{reg}:audiences:slugs       hash    slug -> audience id
    p:{reg}:audiences:numbers     hash    audience id -> small number profiles store (never reused)
    p:{reg}:audiences:numbers:n   string  the last audience number given
    p:{reg}:jobs                  hash    job id -> definition (JSON)
    p:{reg}:auths                 hash    authorization id -> encrypted definition
    p:job:<job>:stats             hash    counters (sent, failed, ...)
    p:job:<job>:error             string  last delivery error (JSON)
    p:job:<job>:health            hash    consecutive failures, first failure, next attempt
    p:job:<job>:dead              stream  dead letters: messages the hub refused for good
    p:job:<job>:backfill          string  backfill progress (JSON)
    p:job:<job>:history           list    state changes, newest first (JSON)
    p:job:<job>:rate              hash    messages sent per 10-second bucket (the last hour)
    p:job:<job>:deliver:lease     string  token of the deliverer holding the job
    p:job:<job>:deliver:kick      string  set while a deliver task is queued
    p:auth:<auth>:partitions      hash    the hub's partition ids as last learned, when, last failure
    p:auth:<auth>:partitions:lock string  set while one process asks the hub for them
    p:metrics                     hash    engine counters (workers/metrics.py)
    p:stats:lateness              list    latest due-lateness samples (ms)
    p:reeval:runs                 hash    re-evaluation run id -> progress (JSON)
    p:reeval:schedules            hash    schedule id -> next time and cron (JSON)
    p:audience:<aud>:sizes        hash    minute -> member count (the last day)
    p:audience-sizes:<minute>     string  claims the minute's size sample
    p:ui:revoked:<nonce>          string  a signed-out dashboard session, until its cookie expires
    p:clock:offset                string  test clock offset in ns (test mode only)
    p:faults                      hash    fault point -> remaining count (test mode only)

    p:{sk}:events                 stream  accepted events and re-evaluation requests of shard k
    p:{sk}:applied                string  id of the last stream entry committed (the shard version)
    p:{sk}:users                  hash    user id -> profile blob
    p:{sk}:due                    zset    due buckets: bucket number -> bucket start (ms);
                                          the three due keys are DueIndex's
    p:{sk}:due:<bucket>           hash    user id -> next time (ms) an answer can flip; scripts
                                          derive it as due .. ':' .. bucket (workers/lua)
    p:{sk}:due:n                  string  users in the shard's due index
    p:{sk}:members:<aud>          zset    user id (score 0, lexicographic) -> member of <aud>;
                                          MemberIndex's
    p:{sk}:outbox:<job>           stream  rendered trigger messages waiting for the hub;
                                          Outbox's (OutboxRecord: its fields)
    p:{sk}:drain:lease            string  token of the drainer holding the shard
    p:{sk}:drain:kick             string  set while a drain task is queued
    p:{sk}:drain:attempts         string  the head entry and its drains that did not commit (JSON)
    p:{sk}:dead                   stream  entries set aside: refused by a limit, or failed N times
    p:{sk}:backfill:<job>         string  backfill cursor: last user id written ("" = start)
    p:{sk}:backfill:<job>:kick    string  set while a backfill task is queued
    p:{sk}:backfill:<job>:lease   string  token of the backfiller holding the (job, shard)
    p:{sk}:intake:<token>         string  outcome of one ingest write, kept minutes (idempotency)
    p:{sk}:seen:<bucket>          set     12-byte digests of event ids seen in a time bucket

Every key a shard's commit touches carries ``{sk}`` as its Redis Cluster hash tag, so the commit
is a single-slot script and the same code runs on one server or a cluster. The definitions share
the tag ``{reg}`` so a definition and the registry version change in one MULTI.
"""

from __future__ import annotations

import zlib


def shard_of(user_id: str, shards: int) -> int:
    """Stable shard of a user: crc32 is fast, portable and identical in every process."""
    return zlib.crc32(user_id.encode("utf-8")) % shards


class Keys:
    """Key builder for one deployment prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    # -- global -----------------------------------------------------------------------------
    @property
    def shards(self) -> str:
        return f"{self.prefix}:meta:shards"

    @property
    def registry_version(self) -> str:
        return f"{self.prefix}:{{reg}}:version"

    @property
    def audiences(self) -> str:
        return f"{self.prefix}:{{reg}}:audiences"

    @property
    def audience_slugs(self) -> str:
        return f"{self.prefix}:{{reg}}:audiences:slugs"

    @property
    def audience_numbers(self) -> str:
        return f"{self.prefix}:{{reg}}:audiences:numbers"

    @property
    def audience_numbers_last(self) -> str:
        return f"{self.prefix}:{{reg}}:audiences:numbers:n"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}:{{reg}}:jobs"

    @property
    def auths(self) -> str:
        return f"{self.prefix}:{{reg}}:auths"

    def auth_partitions(self, auth: str) -> str:
        return f"{self.prefix}:auth:{auth}:partitions"

    def auth_partitions_lock(self, auth: str) -> str:
        return f"{self.prefix}:auth:{auth}:partitions:lock"

    def job_stats(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:stats"

    def job_error(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:error"

    def job_health(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:health"

    def job_dead(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:dead"

    def job_backfill(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:backfill"

    def job_history(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:history"

    def job_rate(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:rate"

    def deliver_lease(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:deliver:lease"

    def deliver_kick(self, job: str) -> str:
        return f"{self.prefix}:job:{job}:deliver:kick"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}:metrics"

    @property
    def lateness(self) -> str:
        return f"{self.prefix}:stats:lateness"

    @property
    def reeval_runs(self) -> str:
        return f"{self.prefix}:reeval:runs"

    @property
    def reeval_schedules(self) -> str:
        return f"{self.prefix}:reeval:schedules"

    def audience_sizes(self, audience: str) -> str:
        return f"{self.prefix}:audience:{audience}:sizes"

    def audience_sizes_claim(self, minute: int) -> str:
        return f"{self.prefix}:audience-sizes:{minute}"

    def ui_revoked(self, nonce: str) -> str:
        return f"{self.prefix}:ui:revoked:{nonce}"

    @property
    def clock_offset(self) -> str:
        return f"{self.prefix}:clock:offset"

    @property
    def faults(self) -> str:
        return f"{self.prefix}:faults"

    # -- per shard ----------------------------------------------------------------------------
    def _shard(self, shard: int) -> str:
        return f"{self.prefix}:{{s{shard}}}"

    def events(self, shard: int) -> str:
        return f"{self._shard(shard)}:events"

    def applied(self, shard: int) -> str:
        return f"{self._shard(shard)}:applied"

    def users(self, shard: int) -> str:
        return f"{self._shard(shard)}:users"

    def due(self, shard: int) -> str:
        return f"{self._shard(shard)}:due"

    def due_bucket(self, shard: int, bucket: int) -> str:
        return f"{self.due(shard)}:{bucket}"

    def due_count(self, shard: int) -> str:
        return f"{self.due(shard)}:n"

    def members(self, shard: int, audience: str) -> str:
        return f"{self._shard(shard)}:members:{audience}"

    def outbox(self, shard: int, job: str) -> str:
        return f"{self._shard(shard)}:outbox:{job}"

    def drain_lease(self, shard: int) -> str:
        return f"{self._shard(shard)}:drain:lease"

    def drain_kick(self, shard: int) -> str:
        return f"{self._shard(shard)}:drain:kick"

    def drain_attempts(self, shard: int) -> str:
        return f"{self._shard(shard)}:drain:attempts"

    def shard_dead(self, shard: int) -> str:
        return f"{self._shard(shard)}:dead"

    def backfill_cursor(self, shard: int, job: str) -> str:
        return f"{self._shard(shard)}:backfill:{job}"

    def backfill_kick(self, shard: int, job: str) -> str:
        return f"{self._shard(shard)}:backfill:{job}:kick"

    def backfill_lease(self, shard: int, job: str) -> str:
        return f"{self._shard(shard)}:backfill:{job}:lease"

    def intake_token(self, shard: int, token: str) -> str:
        return f"{self._shard(shard)}:intake:{token}"

    def seen_ids(self, shard: int, bucket: int) -> str:
        return f"{self._shard(shard)}:seen:{bucket}"

    @property
    def seen_ids_pattern(self) -> str:
        """SCAN pattern matching every shard's seen-id sets (for inspection and benchmarks)."""
        return f"{self.prefix}:*:seen:*"
