"""Semantic Kernel Python's SessionsPythonTool, call by call: one shared httpx.AsyncClient whose
headers each call updates (execute_code sets Content-Type: application/json on the client, and
httpx keeps it on the next upload's multipart body), URLs built as `EP/` + endpoint + `?identifier=
<raw id>&api-version=2024-02-02-preview`, files as `/mnt/data/<name>`, `[]` indexing of every key it
reads (a missing key fails). Mirrors semantic_kernel/core_plugins/sessions_python_tool."""
import asyncio, json, sys, tempfile

import httpx

EP, TOKEN, SID = sys.argv[1:4]
UA = "semantic-kernel-python/1.0 (Language=Python)"


def url(endpoint):
    base = EP if EP.endswith("/") else EP + "/"
    return f"{base}{endpoint.rstrip('/')}?identifier={SID}&api-version=2024-02-02-preview"


async def main():
    out = {}
    client = httpx.AsyncClient(timeout=120)

    async def execute_code(code):
        client.headers.update({"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "User-Agent": UA})
        body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code, "timeoutInSeconds": 100}}
        r = await client.post(url("code/execute/"), json=body)
        r.raise_for_status()
        p = r.json()["properties"]
        return {"status": p["status"], "result": p["result"], "stdout": p["stdout"], "stderr": p["stderr"]}

    out["first"] = await execute_code("import numpy\nstate = 41\nstate")
    client.headers.update({"Authorization": f"Bearer {TOKEN}", "User-Agent": UA})
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as f:
        f.write(b"a,b\n1,2\n")
    with open(f.name, "rb") as data:
        r = await client.post(url("files/upload"), files={"file": ("/mnt/data/data.csv", data, "application/octet-stream")})
    out["uploadSentContentType"] = r.request.headers["content-type"]
    out["uploadStatus"] = r.status_code
    if r.status_code == 200:
        props = r.json()["value"][0]["properties"]
        out["upload"] = {"filename": props["filename"], "size": props["size"]}
    r = await client.get(url("files"))
    r.raise_for_status()
    out["list"] = [[e["properties"]["filename"], e["properties"]["size"]] for e in r.json()["value"]]
    r = await client.get(url("files/content/data.csv"))
    out["download"] = r.text
    out["second"] = await execute_code("len(open('/mnt/data/data.csv').read()) + state")
    await client.aclose()
    print(json.dumps(out))


asyncio.run(main())
