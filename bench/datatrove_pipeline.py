"""The datatrove side of bench/data_vs_datatrove.sh: the equivalent steps on
the same JSONL input, one task (one core).
  filters: NFC normalization (a small formatter, datatrove has none built in)
           + GopherRepetition + GopherQuality + C4Quality(no terminal punct)
           + FineWebQuality + PIIFormatter
  minhash: the four MinHash stages with FineWeb's 5-grams, 14 x 8."""
import sys, time, unicodedata
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter, FineWebQualityFilter
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.base import PipelineStep


class NFC(PipelineStep):
    name = "nfc"

    def run(self, data, rank=0, world_size=1):
        for doc in data:
            doc.text = " ".join(unicodedata.normalize("NFC", doc.text).split(" "))
            yield doc


def filters(inp, out):
    LocalPipelineExecutor(pipeline=[
        JsonlReader(inp), NFC(), GopherRepetitionFilter(), GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(char_duplicates_ratio=0.1),
        PIIFormatter(), JsonlWriter(out)], tasks=1, workers=1, logging_dir=out + "/logs").run()


def minhash(inp, out):
    from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    # Stage 2 must run one task per band (datatrove asserts tasks % num_buckets == 0);
    # workers=1 runs them one after the other in this one process.
    stages = [([JsonlReader(inp), MinhashDedupSignature(output_folder=out + "/sigs", config=cfg)], 1),
              ([MinhashDedupBuckets(input_folder=out + "/sigs", output_folder=out + "/buckets", config=cfg)], cfg.num_buckets),
              ([MinhashDedupCluster(input_folder=out + "/buckets", output_folder=out + "/remove_ids", config=cfg)], 1),
              ([JsonlReader(inp), MinhashDedupFilter(input_folder=out + "/remove_ids"), JsonlWriter(out + "/kept")], 1)]
    for i, (p, tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline=p, tasks=tasks, workers=1, logging_dir="%s/logs%d" % (out, i)).run()


if __name__ == "__main__":
    t = time.time()
    {"filters": filters, "minhash": minhash}[sys.argv[1]](sys.argv[2], sys.argv[3])
    print("%.3f" % (time.time() - t))
