# CryptoDesk image: one image for web, worker and beat (the command differs).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings to load; the key is build-time only and never used at run time
RUN SECRET_KEY=collectstatic-only DEBUG=0 python manage.py collectstatic --no-input \
 && useradd --system --uid 10001 cryptodesk && mkdir -p /app/media && chown cryptodesk /app/media
USER cryptodesk

EXPOSE 8000
CMD ["gunicorn", "cryptodesk.asgi:application", "-k", "cryptodesk.asgi_worker.DeskWorker", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
