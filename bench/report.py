#!/usr/bin/python3
"""Turns one srcu_bench run into docs/perf/: results.json, report.md, plots.

Input: Google Benchmark's JSON (--benchmark_out, every repetition kept) and
the latency quantiles srcu_bench wrote with --samples_out. Every figure is
the median over repetitions; every ratio is srcu's median over the
competitor's, both from this run (repetitions interleaved at random), with a
90% bootstrap interval over the repetitions: where the interval includes 1,
the table marks the ratio "~" (no difference shown). Nothing is carried over
from an earlier run.

Usage: report.py --raw RAW.json --samples SAMPLES.jsonl --out DIR [--readme README.md]
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
from collections import defaultdict

# Row groups: the metric reported, its unit, and whether lower is better.
METRICS = {
    "reader_pair": ("ns_per_pair", "ns", True),
    "sync_latency": ("p50_us", "µs", True),
    "concurrent_updaters": ("us_per_call", "µs", True),
    "defer_enqueue": ("ns_per_call", "ns", True),
    "defer_1M": ("callbacks_per_s", "M/s", False),
    "defer_latency": ("p50_us", "µs", True),
    "hash_map": ("ops_per_s", "M ops/s", False),
    "memory_per_domain": ("bytes_per_domain", "B", True),
    "memory_per_thread": ("bytes_per_thread", "B", True),
}
# The srcu row each group is compared from, and the competitors it meets.
SRCU = {"reader_pair": "srcu", "sync_latency": "srcu-expedited"}
LIB_ORDER = ["srcu", "srcu-expedited", "srcu-own-domains", "srcu-signal-safe", "srcu-down-up", "srcu-retire",
             "srcu-caller-runs", "srcu-reclaim-list",
             "urcu-memb", "urcu-mb", "urcu-qsbr", "ck_epoch", "std::shared_mutex",
             "pthread_rwlock", "std::shared_ptr", "atomic-rmw-pair", "tls-floor"]


# Figures whose repetitions spread wider than this (coefficient of
# variation) carry "±N%" in the tables: read their ratios with that in mind.
NOISY_CV = 0.15


def lib_key(lib):
    return LIB_ORDER.index(lib) if lib in LIB_ORDER else len(LIB_ORDER)


def parse_name(run_name):
    """'hash_map/srcu/threads:2/update_permille:10/iterations:1/manual_time'
    -> ('hash_map', 'srcu', (('threads', 2), ('update_permille', 10)))."""
    parts = run_name.split("/")
    # Library names may contain '::' but never '/'.
    group, lib = parts[0], parts[1]
    params = []
    for p in parts[2:]:
        if ":" in p:
            k, v = p.split(":", 1)
            if k not in ("iterations", "repeats", "min_time", "min_warmup_time"):
                params.append((k, int(v)))
    return group, lib, tuple(params)


def load(raw_path):
    with open(raw_path) as f:
        raw = json.load(f)
    ncpu = int(raw["context"].get("allowed_cpus", raw["context"]["num_cpus"]))
    runs = defaultdict(dict)  # (group, lib, params) -> {rep: entry}
    iterations = defaultdict(set)  # run_name -> iteration counts reported
    errors = [f"{b['name']}: {b.get('error_message')}" for b in raw["benchmarks"]
              if b.get("error_occurred")]
    if errors:  # a row that failed its own check measured nothing worth reporting
        sys.exit("report: rows failed:\n  " + "\n  ".join(errors))
    for b in raw["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        group, lib, params = parse_name(b["run_name"])
        if group not in METRICS:
            continue
        entry = dict(b)
        if group == "reader_pair":
            # CPU-nanoseconds per pair: the threads' CPU time (Google
            # Benchmark sums it over threads) over all pairs. With more threads
            # than CPUs this charges what the pairs cost, not the time a
            # thread waited for its CPU; a wall-time figure would also be
            # skewed when threads do not divide evenly over CPUs.
            assert b["time_unit"] == "ns", b["name"]
            entry["ns_per_pair"] = b["cpu_time"]
        runs[(group, lib, params)][b.get("repetition_index", 0)] = entry
        iterations[b["run_name"]].add(b["iterations"])
    return raw, runs, iterations


def median_of(reps, metric, agg=statistics.median):
    values = [e[metric] for e in reps.values() if metric in e]
    return agg(values) if values else None


def ratio_with_interval(a_reps, b_reps, metric, resamples=2000):
    """median(a) / median(b), and a 90% bootstrap interval: resample each
    side's repetitions with replacement (fixed seed: the report is
    reproducible from raw.json)."""
    a = [e[metric] for e in a_reps.values() if metric in e]
    b = [e[metric] for e in b_reps.values() if e.get(metric)]
    if not a or not b or statistics.median(b) == 0:
        return None, None, None
    rng = random.Random(12345)
    boot = []
    for _ in range(resamples):
        mb = statistics.median(rng.choices(b, k=len(b)))
        if mb:
            boot.append(statistics.median(rng.choices(a, k=len(a))) / mb)
    boot.sort()
    lo, hi = boot[int(0.05 * len(boot))], boot[int(0.95 * len(boot)) - 1]
    return statistics.median(a) / statistics.median(b), lo, hi


def fmt(v, unit=""):
    if v is None:
        return "–"
    if unit in ("M/s", "M ops/s"):
        return f"{v / 1e6:.2f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def params_label(params):
    return ", ".join(f"{k} {v}" for k, v in params) if params else ""


def summarize(runs):
    """results.json rows: one per (group, lib, params) with medians and
    srcu's ratio (with its 90% interval) against it."""
    rows = []
    for (group, lib, params), reps in sorted(
            runs.items(), key=lambda kv: (kv[0][0], kv[0][2], lib_key(kv[0][1]))):
        metric, unit, lower = METRICS[group]
        row = {"group": group, "library": lib, "params": dict(params), "repetitions": len(reps),
               "metric": metric, "unit": unit, "lower_is_better": lower,
               "median": median_of(reps, metric)}
        values = [e[metric] for e in reps.values() if metric in e]
        if len(values) > 1 and statistics.mean(values):
            # Spread across repetitions: coefficient of variation.
            row["cv"] = statistics.stdev(values) / statistics.mean(values)
        for extra in ("p99_us", "max_us", "peak_rss_MiB", "peak_growth_MiB", "gp_per_call", "hb_per_call", "gp_per_s",
                      "rss_per_domain", "bytes_at_creation", "rss_per_thread", "static_tls_bytes",
                      "items_per_second", "threads_added"):
            agg = max if extra == "max_us" else statistics.median
            v = median_of(reps, extra, agg)
            if v is not None:
                row[extra] = v
        srcu_lib = SRCU.get(group, "srcu")
        srcu_reps = runs.get((group, srcu_lib, params))
        if srcu_reps is not None and lib != srcu_lib and not lib.startswith("srcu"):
            ratio, lo, hi = ratio_with_interval(srcu_reps, reps, metric)
            if ratio is not None:
                row["srcu_ratio"], row["srcu_ratio_90"] = ratio, [lo, hi]
        rows.append(row)
    return rows


def cell(r, unit, field=None):
    """'median ±spread% (ratio×)' for one row; `field` shows another
    figure of the row instead, alone."""
    if field is not None:
        return fmt(r.get(field), unit)
    text = fmt(r["median"], unit)
    if r.get("cv", 0) > NOISY_CV:
        text += f" ±{100 * r['cv']:.0f}%"
    if r.get("srcu_ratio") is not None:
        lo, hi = r["srcu_ratio_90"]
        text += f" ({r['srcu_ratio']:.2f}×{' ~' if lo <= 1.0 <= hi else ''})"
    return text


def table(rows, group, title, note, field=None, field_unit=""):
    """A markdown table: one line per params, one column per library."""
    metric, unit, lower = METRICS[group]
    if field is not None:
        unit = field_unit
    sel = [r for r in rows if r["group"] == group]
    if not sel:
        return ""
    libs = sorted({r["library"] for r in sel}, key=lib_key)
    keys = []
    for r in sel:
        k = tuple(r["params"].items())
        if k not in keys:
            keys.append(k)
    out = [f"### {title}", "", note, "",
           "| " + " | ".join(["case"] + libs) + " |",
           "|" + "---|" + "---:|" * len(libs)]
    for k in keys:
        cells = [params_label(k) or "–"]
        for lib in libs:
            r = next((r for r in sel if r["library"] == lib and tuple(r["params"].items()) == k), None)
            if r is None:
                cells.append("")
                continue
            cells.append(cell(r, unit, field))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def losses(rows):
    """Rows where srcu is worse than a competitor, the whole 90% interval
    of the ratio on the wrong side of 1."""
    out = []
    for r in rows:
        ratio = r.get("srcu_ratio")
        if ratio is None:
            continue
        lo, hi = r["srcu_ratio_90"]
        worse = lo > 1.0 if r["lower_is_better"] else hi < 1.0
        if worse:
            out.append(f"- {r['group']} ({params_label(tuple(r['params'].items())) or 'one case'}): "
                       f"srcu {ratio:.2f}× {r['library']} (90% interval {lo:.2f}–{hi:.2f}; "
                       f"{'lower' if r['lower_is_better'] else 'higher'} is better)")
    return out


def targets(runs):
    """The performance targets of issue 11, checked against this run: one
    record per target with srcu's figure, its 90% bootstrap interval and
    whether the figure meets the bound (the interval is shown, not used,
    except for "loses": a hash-map loss is an interval entirely below 1)."""
    out = []

    def reps(group, lib, **params):
        return runs.get((group, lib, tuple(params.items())))

    def ratio(what, bound, a, b, metric):
        if a is None or b is None:
            return
        r, lo, hi = ratio_with_interval(a, b, metric)
        if r is not None:
            out.append({"target": what, "bound": bound, "value": r, "interval": [lo, hi],
                        "met": r <= bound})

    for (group, lib, params) in sorted(k for k in runs if k[0] == "reader_pair" and k[1] == "srcu"):
        p = dict(params)
        t = p.get("threads")
        me = runs[(group, lib, params)]
        threads = f"{t} thread{'' if t == 1 else 's'}"
        ratio(f"reader pair, {threads}: srcu ÷ urcu-memb", 0.8, me, reps(group, "urcu-memb", **p), "ns_per_pair")
        ratio(f"reader pair, {threads}: srcu ÷ tls-floor", 1.5, me, reps(group, "tls-floor", **p), "ns_per_pair")
        for flavour in ("srcu-signal-safe", "srcu-down-up"):
            ratio(f"reader pair, {threads}: {flavour} ÷ atomic-rmw-pair", 0.6,
                  reps(group, flavour, **p), reps(group, "atomic-rmw-pair", **p), "ns_per_pair")
    for readers, bound in ((1, 0.8), (0, 1.0)):
        ratio(f"expedited grace period, {'a reader' if readers else 'no reader'} spinning: srcu ÷ urcu-memb", bound,
              reps("sync_latency", "srcu-expedited", readers=readers),
              reps("sync_latency", "urcu-memb", readers=readers), "p50_us")
    for lib in ("srcu", "srcu-expedited"):
        ratio(f"8 concurrent callers with a reader spinning ÷ 1 caller ({lib})", 2.0,
              reps("concurrent_updaters", lib, callers=8, readers=1),
              reps("concurrent_updaters", lib, callers=1, readers=1), "us_per_call")
    # Hash map: no case where a srcu row loses (interval entirely below 1).
    cases = sorted({k[2] for k in runs if k[0] == "hash_map"})
    for lib in ("srcu", "srcu-caller-runs", "srcu-reclaim-list"):
        for peer in ("urcu-memb", "ck_epoch"):
            lost, seen = [], 0
            for params in cases:
                a, b = runs.get(("hash_map", lib, params)), runs.get(("hash_map", peer, params))
                if a is None or b is None:
                    continue
                r, lo, hi = ratio_with_interval(a, b, "ops_per_s")
                if r is None:
                    continue
                seen += 1
                if hi < 1.0:
                    lost.append({"case": params_label(params), "value": r, "interval": [lo, hi]})
            if seen:
                out.append({"target": f"hash map: {lib} ÷ {peer}, no case lost ({seen} cases)",
                            "bound": "no loss", "losses": lost, "met": not lost})
    mine, ck = reps("memory_per_domain", "srcu"), reps("memory_per_domain", "ck_epoch")
    if mine and ck:
        made = median_of(mine, "bytes_at_creation")
        theirs = median_of(ck, "bytes_per_domain")
        if made is not None and theirs:
            out.append({"target": "memory per domain at creation ÷ ck_epoch's per domain", "bound": 1.0,
                        "value": made / theirs, "interval": None, "met": made <= theirs,
                        "figures": f"{made:,.0f} B ÷ {theirs:,.0f} B"})
    return out


def target_lines(checks):
    lines = ["| target | bound | this run | met |", "|---|---:|---|---|"]
    for c in checks:
        if "losses" in c:
            shown = "; ".join(f"{l['case']}: {l['value']:.2f} ({l['interval'][0]:.2f}–{l['interval'][1]:.2f})"
                              for l in c["losses"]) or "none lost"
            bound = "no loss"
        else:
            shown = c.get("figures", "") or f"{c['value']:.2f}"
            if c.get("figures"):
                shown += f" = {c['value']:.2f}"
            if c["interval"]:
                shown += f" ({c['interval'][0]:.2f}–{c['interval'][1]:.2f})"
            bound = f"≤ {c['bound']:.1f}"
        lines.append(f"| {c['target']} | {bound} | {shown} | {'yes' if c['met'] else '**no**'} |")
    return lines


def machine(raw):
    # srcu_bench records the CPU model and kernel of the machine it ran on;
    # older raw.json files lack them, and then this machine's are read.
    ctx = raw["context"]
    model = ctx.get("cpu_model") or "unknown CPU"
    try:
        if "cpu_model" in ctx:
            raise OSError
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": ctx.get("date"), "host": ctx.get("host_name"), "cpus": int(ctx.get("allowed_cpus", ctx.get("num_cpus"))),
        "cpu_model": model, "mhz": ctx.get("mhz_per_cpu"), "kernel": ctx.get("kernel") or platform.release(),
        "srcu": ctx.get("srcu_version"), "liburcu": ctx.get("liburcu_version"),
        "ck": ctx.get("ck_version"), "google_benchmark": ctx.get("benchmark_version"),
        "compiler": ctx.get("compiler"), "cxx_flags": ctx.get("cxx_flags", "").strip(),
        "pinning": ctx.get("pinning"),
    }


def load_quantiles(samples_path, iterations):
    """name -> averaged quantile curve [(p, us)] over the lines of reported
    runs (lines whose n is an iteration count the JSON reported)."""
    curves = defaultdict(list)
    if not samples_path or not os.path.exists(samples_path):
        return {}
    with open(samples_path) as f:
        for line in f:
            s = json.loads(line)
            reported = {n for run, ns in iterations.items()
                        if run.startswith(s["name"] + "/") for n in ns}
            if s["n"] in reported:
                curves[s["name"]].append(s["q"])
    out = {}
    for name, qs in curves.items():
        points = len(qs[0])
        out[name] = [(qs[0][i][0], statistics.median(q[i][1] for q in qs)) for i in range(points)]
    return out


def plots(rows, quantiles, outdir, m):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = f"{m['cpu_model']}, {m['cpus']} CPUs, {m['date'][:10]}"
    made = []
    palette = plt.get_cmap("tab20").colors
    all_libs = sorted({r["library"] for r in rows}, key=lib_key)

    def color(lib):  # one colour per library in every plot
        return palette[all_libs.index(lib) % len(palette)] if lib in all_libs else None

    # Read-side cost per library against threads.
    sel = [r for r in rows if r["group"] == "reader_pair"]
    if sel:
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for lib in sorted({r["library"] for r in sel}, key=lib_key):
            pts = sorted((r["params"]["threads"], r["median"]) for r in sel if r["library"] == lib)
            style = "-" if lib.startswith("srcu") else "--"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=lib,
                    color=color(lib))
        ax.set_yscale("log")
        ax.set_xticks(sorted({r["params"]["threads"] for r in sel}))
        ax.set_xlabel("reader threads (more than CPUs: oversubscribed)")
        ax.set_ylabel("CPU-ns per lock+unlock pair (log)")
        ax.set_title(f"Read-side cost\n{label}", fontsize=10)
        ax.axvline(m["cpus"], color="grey", lw=0.8, ls=":")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "reader_cost.png"), dpi=110)
        made.append("reader_cost.png")
        plt.close(fig)

    # Synchronize latency CDFs, one panel per number of spinning readers.
    by_readers = defaultdict(dict)
    for name, curve in quantiles.items():
        _, lib, params = parse_name(name)
        by_readers[dict(params).get("readers", 0)][lib] = curve
    if by_readers:
        panels = sorted(by_readers)
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.8), sharey=True)
        if len(panels) == 1:
            axes = [axes]
        for ax, readers in zip(axes, panels):
            for lib in sorted(by_readers[readers], key=lib_key):
                curve = by_readers[readers][lib]
                style = "-" if lib.startswith("srcu") else "--"
                ax.plot([max(v, 1e-3) for _, v in curve], [p for p, _ in curve], style, label=lib,
                        color=color(lib))
            ax.set_xscale("log")
            ax.set_xlabel("synchronize latency (µs, log)")
            ax.set_title(f"{readers} reader thread(s) spinning", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("fraction of calls ≤ x")
        axes[-1].legend(fontsize=8)
        fig.suptitle(f"Grace-period latency CDF — {label}", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "sync_latency_cdf.png"), dpi=110)
        made.append("sync_latency_cdf.png")
        plt.close(fig)

    # Hash-map throughput: one panel per update share, bars per thread count.
    sel = [r for r in rows if r["group"] == "hash_map"]
    if sel:
        mixes = sorted({r["params"]["update_permille"] for r in sel})
        threads = sorted({r["params"]["threads"] for r in sel})
        libs = sorted({r["library"] for r in sel}, key=lib_key)
        fig, axes = plt.subplots(1, len(mixes), figsize=(7 * len(mixes), 5))
        if len(mixes) == 1:
            axes = [axes]
        width = 0.8 / len(threads)
        for ax, mix in zip(axes, mixes):
            for j, t in enumerate(threads):
                ys = []
                for lib in libs:
                    r = next((r for r in sel if r["library"] == lib and
                              r["params"] == {"threads": t, "update_permille": mix}), None)
                    ys.append(r["median"] / 1e6 if r else 0)
                ax.bar([i + j * width for i in range(len(libs))], ys, width, label=f"{t} threads")
            ax.set_xticks([i + width * (len(threads) - 1) / 2 for i in range(len(libs))])
            ax.set_xticklabels(libs, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("M operations/s (all threads)")
            ax.set_title(f"{100 - mix / 10:g}% lookups / {mix / 10:g}% replacements", fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"Hash map, 100,000 keys — {label}", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "hash_map.png"), dpi=110)
        made.append("hash_map.png")
        plt.close(fig)
    return made


def markdown(rows, m, made, raw_name, checks=()):
    lines = [
        "# srcu_bench report",
        "",
        f"Generated by `bench/report.py` from `{raw_name}`; do not edit by hand.",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, Linux {m['kernel']} (`{m['host']}`)",
        f"- Date: {m['date']}",
        f"- Versions: srcu {m['srcu']}, liburcu {m['liburcu']}, ck {m['ck']}, "
        f"Google Benchmark {m['google_benchmark']}, {m['compiler']}, flags `{m['cxx_flags']}`",
        f"- Pinning: {m['pinning']}; repetitions interleaved at random; figures are medians; "
        "(N×) is srcu's median divided by that library's (below 1 is better for srcu where "
        "lower is better, above 1 where higher is better); ~ after it: its 90% bootstrap "
        "interval includes 1, so this run shows no difference. "
        f"±N% marks a figure whose repetitions spread more than {NOISY_CV:.0%} "
        "(coefficient of variation).",
        "",
    ]
    lines += [f"![{p}]({p})" for p in made] + [""]
    lines.append(table(rows, "reader_pair", "Read-side cost (CPU-ns per lock + read + unlock)",
                       "Threads beyond the CPU count oversubscribe. urcu-qsbr's pair is empty; "
                       "its readers pay a quiescent-state announcement every 1,024 pairs."))
    lines.append(table(rows, "sync_latency", "Grace-period latency, median (µs)",
                       "One updater on CPU 0; `readers` threads spin in read sections of the "
                       "same library. Ratios are srcu's synchronize_expedited against each."))
    lines.append(table(rows, "concurrent_updaters", "Concurrent updaters (µs per synchronize, per thread)",
                       "k threads each calling synchronize 500 times, with 0 or 1 thread spinning in read "
                       "sections of the same library; the next two tables show how many "
                       "grace periods and heavy barriers srcu ran per call. srcu-own-domains: each "
                       "thread on a domain of its own (no grace period to share; overlapping scans "
                       "share heavy barriers)."))
    srcu_rows = [r for r in rows if r["library"] in ("srcu", "srcu-expedited", "srcu-own-domains")]
    lines.append(table(srcu_rows, "concurrent_updaters", "Concurrent updaters: srcu's grace periods per call",
                       "Below 1: concurrent calls shared grace periods.",
                       field="gp_per_call", field_unit=""))
    lines.append(table(srcu_rows, "concurrent_updaters", "Concurrent updaters: srcu's heavy barriers per call",
                       "membarrier(2) calls made by reader scans per synchronize call: one per grace "
                       "period with the readers' restartable sequences (no scan of the inactive index), "
                       "with a reader inside or not; without them (SRCU_NO_RSEQ=1, no rseq) one with "
                       "no reader inside (both indices in one scan) and two with one inside.",
                       field="hb_per_call", field_unit=""))
    lines.append(table(rows, "defer_enqueue", "Deferral enqueue cost (ns per call)",
                       "srcu call(), srcu retire() (allocates a node), urcu call_rcu(), ck_epoch_call() "
                       "(plus ck_epoch_poll() every 64 calls: ck has no thread)."))
    lines.append(table(rows, "defer_1M", "1,000,000 deferrals end to end (M callbacks/s)",
                       "From the first enqueue until barrier() returns."))
    lines.append(table(rows, "defer_1M", "1,000,000 deferrals: peak RSS growth (MiB)",
                       "Peak resident set over the row's start: the 1,000,000 caller-owned heads "
                       "plus what the library allocates (srcu-retire: a node per call).",
                       field="peak_growth_MiB", field_unit="MiB"))
    lines.append(table(rows, "defer_latency", "Deferral to invocation, one at a time, idle (µs, median)",
                       "srcu batches call()s for domain_options::callback_delay (1 ms by default) "
                       "before their grace period starts; urcu's call_rcu thread sleeps 10 ms "
                       "between batches. ck has no thread (its caller dispatches), so no row."))
    lines.append(table(rows, "hash_map", "Read-mostly hash map, 100,000 keys (M ops/s)",
                       "Every thread mixes lookups with replacements (update_permille per 1,000); "
                       "one writer at a time. RCU-style libraries defer the old entry's free, "
                       "lock-based ones free it under the write lock, shared_ptr frees on the last "
                       "reference. srcu-caller-runs: srcu with an executor whose ready callbacks the "
                       "updater runs after every 64th call(), as ck's caller does with ck_epoch_poll() "
                       "(the old entries are freed on the updater's own thread, not srcu's worker; "
                       "srcu's engine and dispatch still walk them on their own threads)."
                       + (" srcu-reclaim-list: each updater keeps its old entries in a "
                          "srcu::reclaim_list and frees them itself when poll() says their grace "
                          "period is over, so no entry leaves its thread (no callback is queued)."
                          if any(r["library"] == "srcu-reclaim-list" for r in rows) else "")))
    lines.append(table(rows, "memory_per_domain", "Memory per domain (bytes allocated, 100,000 domains)",
                       "Bytes asked of operator new per domain object used once by one thread (srcu "
                       "and the ck adapter allocate only through new); urcu has no domains (one "
                       "global instance per flavour)."))
    lines.append(table(rows, "memory_per_domain", "Memory per domain at creation (bytes allocated, 100,000 domains)",
                       "The constructors' share of the row above, before the first use: srcu makes "
                       "a domain's state (reader slots, grace periods, callbacks) on first use.",
                       field="bytes_at_creation", field_unit="B"))
    lines.append(table(rows, "memory_per_domain", "Memory per domain (resident bytes)",
                       "Resident-set growth for the same 100,000 domains.",
                       field="rss_per_domain", field_unit="B"))
    lines.append(table(rows, "memory_per_thread", "Memory per reader thread (bytes allocated, 1,000 threads)",
                       "Bytes asked of operator new when a thread starts reading (registration, "
                       "slot, record); urcu's registration allocates nothing (see static TLS)."))
    lines.append(table(rows, "memory_per_thread", "Memory per reader thread (resident bytes)",
                       "Resident-set growth for the same threads: page-granular, so an allocation "
                       "landing on a page the thread's arena already touched shows as 0.",
                       field="rss_per_thread", field_unit="B"))
    lines.append(table(rows, "memory_per_thread", "Static TLS per thread (bytes)",
                       "Thread-local storage the library has in every thread of the process, "
                       "reading or not (srcu: counted by hand from src/; urcu: sizeof its reader "
                       "struct, cache-line aligned; ck: none, the record is allocated).",
                       field="static_tls_bytes", field_unit="B"))
    if checks:
        lines += ["### Targets in this run (issue 11)", "",
                  "Each ratio with its 90% bootstrap interval over this run's repetitions; a target is "
                  "met when the ratio (the medians') is within its bound, and a hash-map row loses "
                  "when its whole interval is below 1. On a 2-CPU machine several of these move "
                  "from run to run: read docs/perf/README.md.", ""]
        lines += target_lines(checks) + [""]
    lost = losses(rows)
    lines += ["### Where srcu loses in this run (90% interval entirely on the wrong side of 1)", ""]
    lines += (lost or ["- nowhere"]) + [""]
    return "\n".join(lines)


def update_readme(readme, rows, m):
    begin, end = "<!-- perf:begin -->", "<!-- perf:end -->"
    with open(readme) as f:
        text = f.read()
    if begin not in text or end not in text:
        print(f"report: {readme} has no {begin} ... {end} block; left alone", file=sys.stderr)
        return

    def get(group, lib, **params):
        r = next((r for r in rows if r["group"] == group and r["library"] == lib
                  and r["params"] == params), None)
        return r

    n = m["cpus"]
    pick = [
        ("read_lock + read_unlock, 1 thread (ns)", "reader_pair", {"threads": 1}, "ns"),
        (f"read_lock + read_unlock, {2 * n} threads on {n} CPUs (CPU-ns)", "reader_pair",
         {"threads": 2 * n}, "ns"),
        ("grace period, no reader (µs, p50; srcu: synchronize_expedited)", "sync_latency",
         {"readers": 0}, "µs"),
        ("grace period, 1 reader spinning (µs, p50)", "sync_latency", {"readers": 1}, "µs"),
        ("deferral enqueue, 1 thread (ns)", "defer_enqueue", {"threads": 1}, "ns"),
        ("1 M deferrals end to end (M/s)", "defer_1M", {}, "M/s"),
        (f"hash map 99/1, {n} threads (M ops/s)", "hash_map", {"threads": n, "update_permille": 10}, "M ops/s"),
        (f"hash map 90/10, {n} threads (M ops/s)", "hash_map", {"threads": n, "update_permille": 100}, "M ops/s"),
    ]
    libs = ["srcu", "urcu-memb", "urcu-qsbr", "ck_epoch", "std::shared_mutex", "std::shared_ptr"]
    out = [begin,
           f"Measured {m['date'][:10]} on {m['cpu_model']} ({n} CPUs, Linux {m['kernel']}); "
           f"srcu {m['srcu']}, liburcu {m['liburcu']}, ck {m['ck']}, {m['compiler']} `{m['cxx_flags']}`. "
           "Medians of interleaved repetitions; (N×) is srcu's median over that library's, ~ when "
           "its 90% bootstrap interval includes 1; ±N% marks a "
           f"spread over {NOISY_CV:.0%}. Full report, "
           "every library and the plots: [docs/perf/report.md](docs/perf/report.md).",
           "",
           "| | " + " | ".join(libs) + " |",
           "|---|" + "---:|" * len(libs)]
    for title, group, params, unit in pick:
        cells = []
        for lib in libs:
            srcu_lib = "srcu-expedited" if group == "sync_latency" and lib == "srcu" else lib
            r = get(group, srcu_lib, **params)
            cells.append("–" if r is None else cell(r, unit))
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    out += ["", "![read-side cost](docs/perf/reader_cost.png)",
            "![synchronize latency](docs/perf/sync_latency_cdf.png)",
            "![hash map](docs/perf/hash_map.png)", end]
    text = text[:text.index(begin)] + "\n".join(out) + text[text.index(end) + len(end):]
    with open(readme, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--samples")
    ap.add_argument("--out", required=True)
    ap.add_argument("--readme")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()

    raw, runs, iterations = load(args.raw)
    if not runs:
        sys.exit("report: no benchmark rows in " + args.raw)
    rows = summarize(runs)
    m = machine(raw)
    os.makedirs(args.out, exist_ok=True)
    made = [] if args.no_plots else plots(rows, load_quantiles(args.samples, iterations), args.out, m)
    checks = targets(runs)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": m, "rows": rows, "targets": checks}, f, indent=1)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(markdown(rows, m, made, os.path.basename(args.raw), checks))
    if args.readme:
        update_readme(args.readme, rows, m)
    print(f"report: {len(rows)} rows, plots {', '.join(made) or 'none'} -> {args.out}")


if __name__ == "__main__":
    main()
