# imgcls on TensorFlow's own image, for clusters (examples/kubernetes, examples/slurm).
#   docker build -t imgcls:0.1.0 .
#   docker build --build-arg TF_IMAGE=tensorflow/tensorflow:2.21.0-gpu -t imgcls:0.1.0-gpu .
# The CPU image by default; the GPU one brings CUDA and cuDNN. TensorFlow comes with the
# image, so pip keeps it and adds the rest.
ARG TF_IMAGE=tensorflow/tensorflow:2.21.0
FROM ${TF_IMAGE}

# The extras `make install` installs but `dev` (tests, linters, the browser driver): an
# image runs imgcls, it does not test it (a test keeps the two lists so).
ARG EXTRAS=export,tensorboard,hf,serve

WORKDIR /opt/imgcls
COPY pyproject.toml README.md ./
COPY imgcls_cli ./imgcls_cli
# This checkout itself; its dependencies' ranges are pyproject.toml's.
# hadolint ignore=DL3013
RUN python -m pip install --no-cache-dir ".[${EXTRAS}]" \
    && imgcls --help > /dev/null

# Runs, caches and downloads go to /runs, a volume the cluster mounts; not as root.
# Ubuntu 24.04 images have a user 1000 already ("ubuntu"): make one only where missing.
RUN (id -u 1000 > /dev/null 2>&1 || useradd --create-home --uid 1000 imgcls) \
    && mkdir -p /runs && chown 1000 /runs
USER 1000
ENV IMGCLS_CACHE_DIR=/runs/.cache/imgcls \
    HF_HOME=/runs/.cache/huggingface \
    KERAS_HOME=/runs/.cache/keras \
    TFDS_DATA_DIR=/runs/tensorflow_datasets
WORKDIR /runs
ENTRYPOINT ["imgcls"]
CMD ["--help"]
