"""The reference for bench_health.py: a bare FastAPI app with one route, nothing else."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/v1/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
