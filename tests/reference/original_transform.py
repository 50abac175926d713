"""The original pipeline's transform, step for step, in pandas: the reference `seed-compat` must match.

Usage: original_transform.py RAW.json OUT.csv FETCH_TIME

FETCH_TIME is in the original's key format (2026-11-27T10-00-00Z). The steps are those of the
Python Lambda that crypto-etl replaces (see shared DESIGN.md, section 1):

  drop columns image and roi; drop rows with any null; drop duplicate rows; add fetch_time;
  reformat ath_date, atl_date, last_updated; add dominance_percentage and volume_percentage.

One deliberate difference: the original crashes on a response fetched with sparkline=true,
because pandas cannot hash the nested lists when it drops duplicate rows. So that the numbers can
still be compared, only when that happens are the nested values turned into compact JSON text
(what crypto-etl does) and the duplicates dropped again; the script says so on stderr. Every
other input costs exactly the original's work, so the benchmark (bench/run.py) times this script
as the pandas baseline.
"""

import json
import sys
from datetime import datetime

import pandas as pd


def main(raw_path: str, out_path: str, fetch_time: str) -> None:
    with open(raw_path, encoding="utf-8") as f:
        coins = json.load(f)
    df = pd.DataFrame(coins)

    df = df.drop(columns=["image", "roi"], errors="ignore")
    df = df.dropna()
    try:
        df = df.drop_duplicates()
    except TypeError:  # unhashable nested values: where the original crashed
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
    main(*sys.argv[1:])
