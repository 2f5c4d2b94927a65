# CPU image: the same install as the README, `edgekd compress` (the quickstart) by default.
FROM python:3.11-slim
# torch's CPU wheels live on PyTorch's index; PyPI's Linux torch is the multi-GB CUDA build.
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/edgekd
COPY pyproject.toml constraints.txt README.md ./
COPY edgekd ./edgekd
COPY pipelines ./pipelines
COPY targets ./targets
RUN pip install -c constraints.txt .
WORKDIR /work
ENTRYPOINT ["edgekd"]
CMD ["compress"]
