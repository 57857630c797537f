"""Task-adaptive pretraining text: the demo corpus plus the unlabelled train text of the tasks
(benchmarks/sample_efficiency.py)."""
import os
from typing import List


def task_adaptive_corpus(corpus: str, task_dirs: List[str], dest: str, doc_words: int = 100) -> str:
    """``corpus`` plus the unlabelled text of each task's train.tsv (never dev.tsv): task-adaptive
    pretraining (Gururangan et al. 2020, arXiv 2004.10964). Texts are split into sentence lines, and
    consecutive texts share a document until it holds ``doc_words`` words, so complete_doc blocks of
    short reviews are not mostly padding; validation stays ``corpus``'s. Written once into ``dest``."""
    import re
    import shutil

    from metro_fairseq.evaluation.label_subsets import read_labelled_tsv

    if os.path.exists(os.path.join(dest, "valid.txt")):
        return dest
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "train.txt.tmp"), "w", encoding="utf-8") as out:
        out.write(open(os.path.join(corpus, "train.txt"), encoding="utf-8").read().rstrip("\n") + "\n\n")
        for task_dir in task_dirs:
            words = 0
            for text in read_labelled_tsv(os.path.join(task_dir, "train.tsv"))[0]:
                out.write("".join(s + "\n" for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s))
                words += len(text.split())
                if words >= doc_words:
                    out.write("\n")
                    words = 0
            out.write("\n" if words else "")
    os.replace(os.path.join(dest, "train.txt.tmp"), os.path.join(dest, "train.txt"))
    shutil.copy(os.path.join(corpus, "valid.txt"), os.path.join(dest, "valid.txt"))
    return dest
