# syntax=docker/dockerfile:1
# paligemma-chat: the chat UI and REST API on port 8010.
#   CPU (default):  docker build -t paligemma-chat .
#   CUDA:           docker build -t paligemma-chat:cuda --build-arg TORCH_VARIANT=cu128 .
# TORCH_VARIANT picks the PyTorch wheel index (cpu, cu126, cu128, ...); the CUDA
# wheels carry their own CUDA libraries, the host needs the NVIDIA driver and
# the NVIDIA Container Toolkit (docker run --gpus all).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt requirements-cuda.txt /tmp/
# torch first from the variant's index (2.13.0+cpu satisfies torch==2.13.0), so
# the CPU image does not pull gigabytes of CUDA libraries from PyPI. The CUDA
# variants add requirements-cuda.txt (bitsandbytes + accelerate, for
# QUANTIZATION=int8/int4 on the GPU).
RUN pip install --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        "torch==$(grep -E '^torch==' /tmp/requirements.txt | cut -d= -f3)" \
 && pip install -r /tmp/requirements.txt \
 && if [ "${TORCH_VARIANT}" != "cpu" ]; then \
        pip install -r /tmp/requirements-cuda.txt; \
    fi

FROM ${PYTHON_IMAGE}
ARG TORCH_VARIANT=cpu
LABEL org.opencontainers.image.title="paligemma-chat" \
      org.opencontainers.image.description="Chat and REST API for PaliGemma 2 detection and segmentation" \
      paligemma-chat.torch-variant="${TORCH_VARIANT}"
# CUDA: torch.compile (COMPILE=auto) builds Triton kernels at start, and
# Triton compiles a small C launcher: it needs gcc at run time.
RUN if [ "${TORCH_VARIANT}" != "cpu" ]; then \
        apt-get update \
     && apt-get install -y --no-install-recommends gcc libc6-dev \
     && rm -rf /var/lib/apt/lists/*; \
    fi
# The code and the venv belong to root and are read-only for the app user;
# it may write only /data (history, downloads) and Chainlit's uploads folder
# (CHAINLIT_APP_ROOT/.files, the app root linking to the read-only config).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
 && mkdir -p /data/hf /data/app /srv/chainlit/.files \
 && chown -R app:app /data /srv/chainlit
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . /app
RUN ln -s /app/.chainlit /app/chainlit.md /app/public /srv/chainlit/
# HF_HOME: model downloads live on the /data volume, so a restart does not
# download again. HF_TOKEN_PATH: huggingface_hub reads the token from this file
# when HF_TOKEN is not set (mount it as a Docker secret named hf_token).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8010 \
    DATA_DIR=/data/app \
    CHAINLIT_APP_ROOT=/srv/chainlit \
    HF_HOME=/data/hf \
    HF_TOKEN_PATH=/run/secrets/hf_token
VOLUME ["/data"]
USER app
EXPOSE 8010
# /ready is 200 once the model and the VAE are loaded; a first start downloads
# several GB and a CPU load takes minutes, hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('PORT', '8010'), timeout=4)"]
CMD ["python", "-m", "scripts.serve"]
