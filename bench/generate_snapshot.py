#!/usr/bin/env python3
"""Generates a large /coins/markets snapshot from the real ones, for the benchmark.

Usage:
  python bench/generate_snapshot.py --coins 100000 --from FIXTURES_DIR --out FILE [--seed 1]

Reads every JSON file in FIXTURES_DIR that is an array of coin objects (the real
/coins/markets responses; /global responses and error bodies are skipped) and writes a JSON
array of N coins shaped like one response of the original extract
(`price_change_percentage=24h`, no sparkline): the 26 standard fields, `image` and `roi`
included, plus `price_change_percentage_24h_in_currency`, in the API's order, minified as
CoinGecko sends it. About 1 KB a coin, so 100,000 coins is about 100 MB.

How coins are made, so the data stays realistic and the output is deterministic
(same inputs and seed, same bytes, whatever the Python 3 version):

- Templates: the real coins, one per id (the newest fixture wins when several have it).
  Coin i copies template i mod T. Copy 0 keeps the real id, symbol and name; copy k >= 1 is
  `<id>-<k>`, `<symbol><k>`, `<name> <k>` (with `-x` added to the id while it would clash with
  a real one, like `terra-luna` copy 2 with `terra-luna-2`), so ids are unique and no two rows
  are equal.
- Numbers are jittered a little per coin: prices by one factor (+-10 %), supplies by another
  (+-5 %), market caps by both, volume by up to +-35 %, percentages by +-10 %. Each value keeps
  its template's JSON type (integer or float) and about its number of significant digits, so
  exponent forms (1.186e-09) and integers above 2^53 still occur.
- Nulls stay where the real coin has them (max_supply, fully_diluted_valuation, roi, the 24h
  fields of stale coins, ...). A template without `price_change_percentage_24h_in_currency`
  gets its `price_change_percentage_24h`.
- `last_updated` is moved to one snapshot time (the newest in the fixtures), keeping each
  coin's lag behind its own snapshot, so stale coins stay stale. `ath_date`, `atl_date`,
  `image` and `roi` are kept as they are.
- The array is sorted by market cap, largest first, and `market_cap_rank` renumbered 1..N.
"""

import argparse
import json
import os
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The fields of one coin in a response of the original extract, in the API's order.
FIELDS = [
    "id", "symbol", "name", "image", "current_price", "market_cap", "market_cap_rank",
    "fully_diluted_valuation", "total_volume", "high_24h", "low_24h", "price_change_24h",
    "price_change_percentage_24h", "market_cap_change_24h", "market_cap_change_percentage_24h",
    "circulating_supply", "total_supply", "max_supply", "ath", "ath_change_percentage", "ath_date",
    "atl", "atl_change_percentage", "atl_date", "roi", "last_updated",
    "price_change_percentage_24h_in_currency",
]  # fmt: skip

PRICE = ["current_price", "high_24h", "low_24h", "price_change_24h", "ath", "atl"]
CAP = ["market_cap", "fully_diluted_valuation", "market_cap_change_24h"]
SUPPLY = ["circulating_supply", "total_supply", "max_supply"]
VOLUME = ["total_volume"]
PERCENT = [
    "price_change_percentage_24h", "market_cap_change_percentage_24h", "ath_change_percentage",
    "atl_change_percentage", "price_change_percentage_24h_in_currency",
]  # fmt: skip

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_time(text):
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


def format_time(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def load_templates(folder):
    """The real coins, one per id, each with its lag behind its own snapshot's newest update."""
    files = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print(f"skipping {path.name}: {e}", file=sys.stderr)
            continue
        if not (isinstance(data, list) and data and all(isinstance(c, dict) and "id" in c for c in data)):
            continue  # /global, error bodies, anything that is not an array of coins
        newest = max(parse_time(c["last_updated"]) for c in data if c.get("last_updated"))
        files.append((newest, path.name, data))
    if not files:
        sys.exit(f"no /coins/markets arrays in {folder}")
    files.sort()  # oldest snapshot first, so a newer one replaces it for the same id
    by_id = {}
    for newest, _name, data in files:
        for coin in data:
            lag = None
            if coin.get("last_updated"):
                lag = (newest - parse_time(coin["last_updated"])).total_seconds()
            by_id[coin["id"]] = (coin, lag)
    snapshot_time = max(newest for newest, _, _ in files)
    templates = [by_id[k] for k in sorted(by_id)]
    used = ", ".join(f"{name} ({len(data)})" for _, name, data in files)
    print(f"templates: {len(templates)} distinct coins from {used}", file=sys.stderr)
    return templates, snapshot_time


def significant_digits(value):
    """How many significant digits the shortest repr of a float shows (at least 3)."""
    digits = repr(value).split("e")[0].lstrip("-").replace(".", "").strip("0")
    return max(3, min(17, len(digits)))


def jitter(value, factor):
    """value * factor, keeping the JSON type and about the precision of the real value."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    scaled = value * factor
    if isinstance(value, int):
        return int(round(scaled))
    return float(format(scaled, f".{significant_digits(value)}g"))


def make_coin(template, lag, copy, snapshot_time, rng, used_ids):
    u = rng.random  # only random() is used: stable across Python versions for a seed
    price, supply = 1 + (u() - 0.5) * 0.2, 1 + (u() - 0.5) * 0.1
    volume, percent = 1 + (u() - 0.5) * 0.7, 1 + (u() - 0.5) * 0.2
    coin = {name: template.get(name) for name in FIELDS}
    if coin["price_change_percentage_24h_in_currency"] is None and (
        "price_change_percentage_24h_in_currency" not in template
    ):
        coin["price_change_percentage_24h_in_currency"] = template.get("price_change_percentage_24h")
    if copy:
        coin["id"] = f"{template['id']}-{copy}"
        while coin["id"] in used_ids:  # `terra-luna` copy 2 would be the real `terra-luna-2`
            coin["id"] += "-x"
        used_ids.add(coin["id"])
        coin["symbol"] = f"{template['symbol']}{copy}"
        coin["name"] = f"{template['name']} {copy}"
    factors = [(PRICE, price), (CAP, price * supply), (SUPPLY, supply), (VOLUME, volume), (PERCENT, percent)]
    for names, factor in factors:
        for name in names:
            coin[name] = jitter(coin[name], factor)
    if lag is not None:
        coin["last_updated"] = format_time(snapshot_time - timedelta(seconds=lag + u() * 30))
    return coin


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coins", type=int, required=True, help="how many coins to write")
    parser.add_argument("--from", dest="source", required=True, help="folder of real /coins/markets responses")
    parser.add_argument("--out", required=True, help="the JSON file to write (written atomically)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--indent", type=int, help="pretty-print (default: minified, as the API sends)")
    args = parser.parse_args()
    if args.coins < 1:
        sys.exit("--coins must be at least 1")

    templates, snapshot_time = load_templates(args.source)
    rng = random.Random(args.seed)
    used_ids = {template["id"] for template, _ in templates}
    coins = []
    for i in range(args.coins):
        template, lag = templates[i % len(templates)]
        coins.append(make_coin(template, lag, i // len(templates), snapshot_time, rng, used_ids))
    assert len({c["id"] for c in coins}) == len(coins), "ids must be unique"
    coins.sort(key=lambda c: (-(c["market_cap"] or 0), c["id"]))
    for rank, coin in enumerate(coins, start=1):
        coin["market_cap_rank"] = rank

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    separators = (",", ": ") if args.indent is not None else (",", ":")
    with open(partial, "w", encoding="utf-8") as f:
        if args.indent is None:  # one coin at a time: no second copy of 100 MB in memory
            f.write("[")
            for i, coin in enumerate(coins):
                if i:
                    f.write(",")
                f.write(json.dumps(coin, ensure_ascii=False, separators=separators))
            f.write("]")
        else:
            json.dump(coins, f, ensure_ascii=False, indent=args.indent, separators=separators)
    os.replace(partial, out)
    with_null = sum(any(c[k] is None for k in FIELDS if k not in ("image", "roi")) for c in coins)
    print(
        f"wrote {len(coins)} coins, {out.stat().st_size / 1e6:.1f} MB, to {out} "
        f"({with_null} with a null outside image/roi)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
