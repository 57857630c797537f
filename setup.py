from setuptools import find_packages, setup

setup(
    name="metro_fairseq",
    version="0.1.0",
    description="METRO-style pretraining (generator + replaced-token detection) as a fairseq plugin",
    license="MIT",
    packages=find_packages(include=["metro_fairseq", "metro_fairseq.*"]),
    # the user-facing tools, as fairseq's own (fairseq-preprocess, ...); scripts/<tool>.py run them from a checkout
    entry_points={
        "console_scripts": [
            "metro-prepare-corpus = metro_fairseq.cli.prepare_corpus:main",
            "metro-prepare-multilingual-corpus = metro_fairseq.cli.prepare_multilingual_corpus:main",
            "metro-prepare-glue = metro_fairseq.cli.prepare_glue:main",
            "metro-prepare-squad = metro_fairseq.cli.prepare_squad:main",
            "metro-prepare-token-classification = metro_fairseq.cli.prepare_token_classification:main",
            "metro-export = metro_fairseq.cli.export_main_model:main",
            "metro-export-hf = metro_fairseq.hf.export:main",
            "metro-import-hf = metro_fairseq.hf.import_hf:main",
            "metro-probe = metro_fairseq.cli.probe_checkpoint:main",
            "metro-squad-eval = metro_fairseq.cli.squad_eval:main",
            "metro-sweep = metro_fairseq.cli.sweep:main",
            "metro-train-composite = metro_fairseq.cli.train_composite:main",
            "metro-training-report = metro_fairseq.cli.training_report:main",
            "metro-glue-results = metro_fairseq.cli.glue_results:main",
        ],
    },
    package_data={"metro_fairseq": ["config/**/*.yaml"]},
    python_requires=">=3.8",
    install_requires=[
        "torch>=1.13",
        # PyPI fairseq 0.12.2 does not import on Python >= 3.11 (dataclass defaults);
        # fairseq-fixed is fairseq main with that fix and provides the same `fairseq` package.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        "fairscale",
        "hydra-core>=1.0.7,<1.4",
        "omegaconf>=2.0.6,<2.4",
        "sentencepiece",
        "submitit",
        "hydra-submitit-launcher",  # +run_config=local / slurm_N (hydra multirun through submitit)
        "numpy",
    ],
    extras_require={
        # pytest-xdist: scripts/test.sh runs one worker per core
        "dev": ["pytest", "pytest-xdist", "matplotlib"],
        # fairseq-train --tensorboard-logdir (fairseq writes through torch.utils.tensorboard)
        "tensorboard": ["tensorboard"],
        # metro-export-hf; 5.x runs on the torch we pin (tested: 5.23.0); protobuf reads spm models
        "hf": ["transformers>=5.23,<6", "protobuf>=4"],
    },
)
