#!/usr/bin/env python3
"""The original pipeline's transform in pandas, as the benchmark's baseline.

Usage: pandas_transform.py RAW.json OUT.csv FETCH_TIME     (FETCH_TIME like 2026-11-27T10-00-00Z)

The steps of the Python Lambda that crypto-etl replaces (shared DESIGN.md, section 1), with the
same semantics as tests/reference/original_transform.py (the parity reference): read the raw
JSON; drop `image` and `roi`; drop every row with any null; drop duplicate rows; add
`fetch_time`; reformat `ath_date`, `atl_date`, `last_updated` as YYYY-MM-DDTHH:MM:SS; add
`dominance_percentage` and `volume_percentage` over the rows kept; write a CSV with a header.

It is not an import of the reference because the reference scans every column for nested values
before dropping duplicates, which the original did not do and which would bill pandas for work
the original never did. Here the duplicate check runs as the original's did, and only if pandas
cannot hash a nested value (a response fetched with sparkline=true, where the original crashed)
are the nested values turned into compact JSON text, as the reference does, so the output is
the same as the reference's either way.
"""

import json
import sys
from datetime import datetime

import pandas as pd


def transform(raw_path: str, out_path: str, fetch_time: str) -> None:
    with open(raw_path, encoding="utf-8") as f:
        coins = json.load(f)
    df = pd.DataFrame(coins)

    df = df.drop(columns=["image", "roi"], errors="ignore")
    df = df.dropna()
    try:
        df = df.drop_duplicates()
    except TypeError:  # unhashable nested values: the original crashed here
        nested = [c for c in df.columns if df[c].map(lambda v: isinstance(v, (dict, list))).any()]
        print(f"note: original would crash on nested columns {nested}; comparing as JSON text", file=sys.stderr)
        for c in nested:
            df[c] = df[c].map(lambda v: json.dumps(v, separators=(",", ":")))
        df = df.drop_duplicates()

    fetch_dt = datetime.strptime(fetch_time, "%Y-%m-%dT%H-%M-%SZ")
    df["fetch_time"] = fetch_dt.strftime("%Y-%m-%dT%H:%M:%S")
    for column in ["ath_date", "atl_date", "last_updated"]:
        df[column] = pd.to_datetime(df[column]).dt.strftime("%Y-%m-%dT%H:%M:%S")

    df["dominance_percentage"] = df["market_cap"] / df["market_cap"].sum() * 100
    df["volume_percentage"] = df["total_volume"] / df["total_volume"].sum() * 100
    df.to_csv(out_path, index=False)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    transform(*sys.argv[1:])
