# glide-ui in a container: docker build -t glide-ui . && docker run -p 7860:7860 -v glide-cache:/cache -v glide-outputs:/outputs glide-ui
# (Written to be read, not built here: the machines this project is developed on have no Docker.)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GLIDE_CACHE_DIR=/cache \
    GLIDE_OUTPUTS=/outputs

RUN useradd --create-home --uid 1000 glide \
    && mkdir /cache /outputs \
    && chown glide:glide /cache /outputs

WORKDIR /app
COPY requirements.txt requirements-nodeps.txt ./
RUN pip install -r requirements.txt \
    && pip install --no-deps -r requirements-nodeps.txt

COPY --chown=glide:glide app.py ./
COPY --chown=glide:glide glide_ui ./glide_ui
COPY --chown=glide:glide assets ./assets

USER glide
# Downloaded checkpoints (about 7 GB for all six GLIDE models) in /cache, every result PNG
# and the History's index in /outputs (README, "Outputs and History"), across containers.
VOLUME ["/cache", "/outputs"]
EXPOSE 7860
CMD ["python", "app.py"]
