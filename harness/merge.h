// boundbench merge: the shard folders of one run (boundbench run --shard I/N,
// harness/runner.h) joined into one run folder with the files of an
// unsharded run (harness/records.h):
//   samples.jsonl  every shard's records in the unsharded run's order (model,
//                  norm, batch, method, sample); with the same --batch, the
//                  file of an uninterrupted unsharded run, line for line
//                  (times aside);
//   summary.csv    summarise() over them, as `run` writes it;
//   run.json       the configuration, the models, the skipped methods and
//                  the environment of shard 0; `started` the earliest start
//                  and `finished` the latest end of the shards (the span
//                  of the whole job, not a sum); `merged` lists every shard
//                  (folder, shard, command line, start, end, records, host
//                  and environment, its resumes). No `shard` key: the
//                  merged folder is an ordinary run folder (`run --resume`
//                  accepts it and finds nothing to do).
//
// Refused, each with one line naming the folders (bb::Error), before
// anything is written: a folder that is not a finished shard (no run.json,
// no shard in it, no end time, a torn or short samples.jsonl); shards of
// different configurations (every differing key with both values), shard
// counts or batches; a shard given twice; shards missing; shards that
// disagree on a model's checksum or on the selected test images; a record
// that is not the shard's, or is in two shards; a (model, norm, method) not
// skipped whose records are not complete.
//
// The output folder must not exist, or be empty, and its parent must exist:
// everything is written into a temporary folder beside it (".NAME.merge.XXXXXX")
// and renamed into place, so a refused or failed merge leaves nothing.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/records.h"

namespace bb {

struct MergeOutcome {
  std::vector<nlohmann::json> records;  // in the unsharded order
  Summary summary;
  int64_t shards = 0;
  // Differences between the shards' environments that can move values in
  // their last bits against an unsharded run (threads, LibTorch, BLAS):
  // "threads: 1 in shard 0/3, 2 in shard 2/3".
  std::vector<std::string> notes;
};

MergeOutcome merge_shards(
    const std::vector<std::string>& shard_folders,
    const std::string& out,
    const std::string& command_line);

}  // namespace bb
