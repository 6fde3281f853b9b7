#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/) and the misuse inputs (fuzz/misuse/).

Encoding (fuzz/program.h): one setup byte, then (op, arg) pairs;
op = code | worker << 5, arg = slot | choice << 2. Run again after a change
to the codes in fuzz/program.cc.
"""
import pathlib

CODES = {name: i for i, name in enumerate([
    "read_lock", "read_unlock", "signal_lock", "signal_unlock", "down_read", "up_read",
    "lock", "try_lock", "unlock", "guarded_section",
    "synchronize", "synchronize_expedited", "cond_synchronize", "barrier",
    "call_head", "call_lambda", "retire", "retire_obj",
    "get_cookie", "start_poll", "poll", "gp_count",
    "end_round", "create", "destroy"])}
CODES["reclaim_flush"] = 29
CODES["defer"] = 30  # choice & 3 == 3: reclaim()
CODES["misuse"] = 31


def setup(domains, executors=(0, 0, 0)):
    b = domains - 1
    for i, e in enumerate(executors):
        b |= e << (2 + 2 * i)
    return bytes([b])


def op(name, worker=0, slot=0, choice=0):
    return bytes([CODES[name] | worker << 5, slot | choice << 2])


def program(head, *ops):
    return head + b"".join(op(*o) if isinstance(o, tuple) else op(o) for o in ops)


SEEDS = {
    # Every reader flavour on three workers, then updaters from a fourth slot.
    "readers": program(setup(1),
        ("read_lock", 0), ("signal_lock", 1), ("down_read", 2), ("lock", 0), ("try_lock", 0),
        ("get_cookie", 1), ("poll", 1), ("synchronize", 2), ("unlock", 0), ("unlock", 0),
        ("read_unlock", 0), ("signal_unlock", 1), ("up_read", 2), "end_round",
        ("synchronize_expedited", 0), ("poll", 1), ("gp_count", 2)),
    # Callbacks of every kind on two domains, each with an executor.
    "callbacks": program(setup(2, (1, 2, 0)),
        ("call_head", 0, 0), ("call_lambda", 1, 1), ("retire", 2, 0), ("retire_obj", 0, 1),
        ("barrier", 1, 0), ("barrier", 2, 1), "end_round",
        ("call_head", 0, 1), ("read_lock", 1, 1), ("barrier", 0, 1), ("call_lambda", 2, 0)),
    # Polled grace periods: cookies, start_poll, cond_synchronize.
    "polling": program(setup(1),
        ("get_cookie", 0), ("start_poll", 1), ("read_lock", 2), ("start_poll", 2),
        ("poll", 2), ("poll", 0), "end_round",
        ("poll", 1, 0, 1), ("cond_synchronize", 0), ("poll", 1), ("synchronize", 1),
        ("poll", 2, 0, 1), ("gp_count", 0)),
    # down_read() on one worker, up_read() on another a round later.
    "handoff": program(setup(2),
        ("down_read", 0, 0), ("down_read", 0, 1), ("down_read", 1, 0), "end_round",
        ("up_read", 1, 0), ("up_read", 2, 1), ("synchronize", 2, 0), ("up_read", 0, 0)),
    # Domains created and destroyed with work queued on them.
    "lifecycle": program(setup(1),
        ("create", 0, 2, 1), ("create", 0, 3, 2), ("call_head", 1, 2), ("call_lambda", 2, 3),
        ("read_lock", 0, 3), ("destroy", 0, 3), ("retire", 1, 2), ("destroy", 0, 2),
        ("create", 0, 3), ("call_head", 2, 3), ("down_read", 1, 3)),
    # lock()/unlock() nesting and guarded sections of each variant.
    "guards": program(setup(1),
        ("lock", 0), ("lock", 0), ("guarded_section", 1, 0, 0), ("guarded_section", 2, 0, 1),
        ("guarded_section", 1, 0, 2), ("guarded_section", 2, 0, 7), ("unlock", 0),
        ("get_cookie", 0), ("poll", 0), ("unlock", 0)),
    # Expedited and normal waits racing readers of other slots on other workers.
    "contention": program(setup(3, (0, 1, 2)),
        ("read_lock", 0, 0), ("read_lock", 1, 2), ("signal_lock", 2, 1),
        ("synchronize_expedited", 0, 1), ("synchronize", 1, 0), ("synchronize", 2, 2),
        ("call_head", 0, 2), ("barrier", 1, 2), ("read_unlock", 0, 0), "end_round",
        ("down_read", 0, 2), ("synchronize_expedited", 1, 2), ("gp_count", 2, 2)),
    # Each worker's reclaim_list: defers inside and outside its own sections
    # (pinned), reclaims, a flush, and lists alive when their domain goes.
    "reclaim_list": program(setup(2, (0, 1, 0)),
        ("read_lock", 0, 0), ("defer", 0, 0), ("defer", 0, 0), ("defer", 0, 0, 3),
        ("signal_lock", 1, 1), ("defer", 1, 1), ("defer", 1, 1, 3), ("signal_unlock", 1, 1),
        ("defer", 2, 0), ("defer", 2, 0), ("reclaim_flush", 2, 0), ("defer", 0, 0, 3),
        ("read_unlock", 0, 0), ("defer", 0, 0), "end_round",
        ("down_read", 0, 1), ("defer", 0, 1), ("defer", 0, 1), "end_round",
        ("up_read", 1, 1), ("defer", 0, 1, 3), ("reclaim_flush", 0, 1), ("defer", 1, 0),
        ("destroy", 0, 0), ("defer", 2, 1)),
}

# Each must make srcu abort with "srcu: domain '...'" (SRCU_FUZZ_MISUSE=1).
MISUSE = {
    "default_token": program(setup(1), ("read_lock", 0), ("misuse", 1, 0, 0)),
    "foreign_token": program(setup(2), ("misuse", 0, 0, 1)),
    "wrong_flavour": program(setup(1), ("misuse", 2, 0, 2)),
    "unlock_without_lock": program(setup(1), ("lock", 0), ("misuse", 1, 0, 3)),
    "synchronize_in_reader": program(setup(1), ("misuse", 0, 0, 4)),
    "defer_twice": program(setup(1), ("misuse", 1, 0, 5)),
    "flush_in_function": program(setup(1), ("misuse", 2, 0, 6)),
}


def write(directory, files):
    directory.mkdir(exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


here = pathlib.Path(__file__).resolve().parent
write(here / "corpus", SEEDS)
write(here / "misuse", MISUSE)
