"""AutoGen's ACADynamicSessionsCodeExecutor, call by call: aiohttp, one ClientSession per
operation with fresh headers, the raw identifier, package discovery parsing `str(result)`, the
`os.chdir('/mnt/data')` setup cell, uploads as FormData (basename), code reading the uploaded file
by a relative path, then file listing and download. Mirrors autogen_ext/code_executors/azure."""
import asyncio, json, sys

import aiohttp

EP, TOKEN, SID = sys.argv[1:4]


def url(path):
    base = EP if EP.endswith("/") else EP + "/"
    return f"{base}{path}?api-version=2024-02-02-preview&identifier={SID}"


async def execute(code):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    properties = {"codeInputType": "inline", "executionType": "synchronous", "code": code}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        resp = await client.post(url("code/execute"), headers=headers, json={"properties": properties})
        resp.raise_for_status()
        return (await resp.json())["properties"]


async def main():
    out = {}
    pkgs = await execute("import pkg_resources\n[d.project_name for d in pkg_resources.working_set]")
    out["packages"] = [p.strip().strip("'") for p in str(pkgs["result"]).strip("[]").split(",\n")]
    out["cwd"] = (await execute("import os; os.chdir('/mnt/data')"))["status"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        data = aiohttp.FormData()
        data.add_field("file", b"x,y\n3,4\n", filename="points.csv", content_type="application/octet-stream")
        resp = await client.post(url("files/upload"), headers=headers, data=data)
        out["uploadStatus"] = resp.status
    run = await execute("print(open('points.csv').read().splitlines()[1])")
    out["read"] = [run["status"], run["stdout"]]
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url("files"), headers=headers)
        out["list"] = [v["properties"]["filename"] for v in (await resp.json())["value"]]
        resp = await client.get(url("files/content/points.csv"), headers=headers)
        out["download"] = await resp.text()
    failed = await execute('raise ValueError("bad")')
    out["failure"] = ["Failure" in failed["status"], "ValueError: bad" in failed["stderr"]]
    print(json.dumps(out))


asyncio.run(main())
