FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY workers ./workers
COPY tasks ./tasks
COPY audiencehub ./audiencehub
RUN pip install --no-cache-dir .
USER nobody
