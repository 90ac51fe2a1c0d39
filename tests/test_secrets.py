"""Side doors around stored secrets and names: rotated keys, several keys, unique labels."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from audiencehub.processes import celery_env
from tests.helpers import RecordingSender, cli
from workers.audiences.registry_store import Conflict
from workers.config import ConfigError, Settings
from workers.delivery.deliver import Deliverer, SenderPool
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.control import JobControl
from workers.jobs.secrets import SecretUnreadable, new_key, secret_box
from workers.jobs.setup import create_job
from workers.jobs.store import JobStore
from workers.keys import Keys

CONN = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abcd1234;EntityPath=hub"
OLD, NEW = new_key(), new_key()


def with_keys(engine: Engine, keys: str) -> Engine:
    cfg = dataclasses.replace(engine.cfg, secret_key=keys)
    return Engine.create(RecordingSender(), cfg=cfg, r=engine.r)


def a_job(engine: Engine, label: str = "j") -> str:
    from workers.audiences.store import AudienceStore

    AudienceStore(engine.r, engine.keys).create(f"a_{label}", "FILTER EXISTS email")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create(f"auth-{label}", CONN)
    return create_job(engine, label, auth.id, [f"a_{label}"]).id


def test_a_job_whose_authorization_cannot_be_decrypted_fails_with_the_reason(
    engine: Engine,
) -> None:
    """The issue: with a rotated key the job stayed ``running`` with no error while its backlog
    grew. Now the first delivery fails the job and says what to do."""
    job_id = a_job(with_keys(engine, OLD))
    rotated = with_keys(engine, NEW)
    report = Deliverer(rotated, SenderPool(rotated).get).deliver(job_id)
    job = JobStore(rotated.r, rotated.keys).get(job_id)
    assert job.state == "failed"
    assert "cannot be decrypted" in job.reason and "secret rotate" in job.reason
    assert "auth-j" in job.reason
    assert report.error
    assert JobControl(rotated).history(job_id)[0]["state"] == "failed"


def test_several_keys_open_old_secrets_and_rotate_seals_them_with_the_first(
    engine: Engine,
) -> None:
    old = with_keys(engine, OLD)
    store_old = AuthStore(old.r, old.keys, old.cfg)
    first = store_old.create("one", CONN)
    both = with_keys(engine, f"{NEW}, {OLD}")
    store_both = AuthStore(both.r, both.keys, both.cfg)
    assert store_both.connection(first.id).key == "abcd1234"  # opened with the old key
    second = store_both.create("two", CONN)  # sealed with the new key
    with pytest.raises(SecretUnreadable):
        store_old.connection(second.id)
    done, unreadable = store_both.reseal_all()
    assert sorted(done) == sorted([first.id, second.id]) and unreadable == []
    only_new = AuthStore(engine.r, engine.keys, with_keys(engine, NEW).cfg)
    assert only_new.connection(first.id).key == "abcd1234"
    with pytest.raises(SecretUnreadable):
        store_old.connection(first.id)


def test_rotate_reports_what_no_key_opens_and_leaves_it(engine: Engine) -> None:
    lost = AuthStore(engine.r, engine.keys, with_keys(engine, OLD).cfg).create("lost", CONN)
    done, unreadable = AuthStore(engine.r, engine.keys, with_keys(engine, NEW).cfg).reseal_all()
    assert (done, unreadable) == ([], [lost.id])
    assert AuthStore(engine.r, engine.keys, with_keys(engine, OLD).cfg).connection(lost.id)


def test_a_malformed_key_in_the_list_is_named(cfg: Settings) -> None:
    with pytest.raises(ConfigError, match="key number 2 of"):
        secret_box(dataclasses.replace(cfg, secret_key=f"{NEW},not-a-key"))
    production = dataclasses.replace(cfg, mode="production", secret_key=None)
    with pytest.raises(ConfigError, match="AUDIENCEHUB_SECRET_KEY is not set"):
        secret_box(production)


def test_secret_rotate_command(cfg: Settings) -> None:
    env = celery_env(
        cfg.redis_url,
        AUDIENCEHUB_MODE="test",
        AUDIENCEHUB_SECRET_KEY=OLD,
        AUDIENCEHUB_SHARDS=str(cfg.shards),
    )
    cli(env, "auth", "create", "--label", "rot", "--connection-string", "-", stdin=CONN)
    env["AUDIENCEHUB_SECRET_KEY"] = f"{NEW},{OLD}"
    assert "re-encrypted 1 authorization(s)" in cli(env, "secret", "rotate")
    env["AUDIENCEHUB_SECRET_KEY"] = NEW
    said = cli(env, "auth", "show", "rot")
    assert "rot" in said
    env["AUDIENCEHUB_SECRET_KEY"] = OLD
    out = cli(env, "secret", "rotate", check=False)
    assert "cannot decrypt authorization 'rot'" in out
    assert "Traceback" not in out


# -- labels ---------------------------------------------------------------------------------------
def test_duplicate_labels_are_refused(engine: Engine) -> None:
    a_job(engine, "dup")
    auths = AuthStore(engine.r, engine.keys, engine.cfg)
    with pytest.raises(Conflict, match="labels are unique"):
        auths.create("auth-dup", CONN)
    with pytest.raises(Conflict, match="labels are unique"):
        create_job(engine, "dup", auths.get("auth-dup").id, ["a_dup"])
    assert [j.label for j in JobStore(engine.r, engine.keys).all()] == ["dup"]


def test_labels_duplicated_before_the_check_are_never_picked_silently(engine: Engine) -> None:
    job_id = a_job(engine, "twin")
    jobs = JobStore(engine.r, engine.keys)
    twin = {**jobs.raw_get(job_id), "id": "f" * 32}  # type: ignore[dict-item]
    jobs.raw_put(twin["id"], twin)  # as an older version could have stored it
    with pytest.raises(Conflict, match="2 jobs are labelled 'twin'"):
        jobs.get("twin")
    assert jobs.get(job_id).id == job_id


def test_the_cli_says_so_without_a_traceback(cfg: Settings) -> None:
    env = celery_env(cfg.redis_url, AUDIENCEHUB_MODE="test", AUDIENCEHUB_SHARDS=str(cfg.shards))
    cli(env, "auth", "create", "--label", "same", "--connection-string", "-", stdin=CONN)
    out = cli(
        env,
        "auth",
        "create",
        "--label",
        "same",
        "--connection-string",
        "-",
        stdin=CONN,
        check=False,
    )
    assert "Error: an authorization labelled 'same' exists already" in out
    assert "Traceback" not in out
    r = redis.Redis.from_url(cfg.redis_url)
    assert len(r.hgetall(Keys(cfg.prefix).auths)) == 1
