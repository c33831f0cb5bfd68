"""The page is one self-contained file whose data cannot break out of its script element."""

import json
import re

import pytest

from agemem_gym.error import DataFormatError
from agemem_gym.viewer import episode_view, expand_paths, gold_spans, render_html, write_report
from tests.viewer.conftest import EVIL


def test_gold_spans_mark_matching_sentences_in_utf16_offsets():
    facts = ["Paris is the capital of France.", "The Seine flows through Paris."]
    text = "🙂 Noise first. Paris is the capital of France. The Seine flows through Paris!"
    spans = gold_spans(text, facts)
    assert [s[2] for s in spans] == [[0], [1]]
    utf16 = text.encode("utf-16-le")
    start, end = spans[0][:2]
    assert utf16[2 * start : 2 * end].decode("utf-16-le") == "Paris is the capital of France."
    assert gold_spans(text, []) == [] and gold_spans("", facts) == []
    assert gold_spans("Bananas are yellow.", facts) == []


def test_view_model_frames_and_fact_events(episodes):
    episode = episodes["oracle"]
    view = episode_view(episode)
    assert len(view["frames"]) == len(episode.steps) + 1
    assert view["facts"] == episode.task["facts"] and view["budget"] == episode.budget
    json.dumps(view)  # plain data
    stored_at = {t for events in view["stored"] for t, _ in events}
    adds = {s.t for s in episode.steps if s.raw.get("ltm", {}).get("add")}
    assert stored_at == adds  # the oracle stores only gold facts
    retrieve = next(s.t for s in episode.steps if s.calls and s.calls[0].name == "Retrieve_memory")
    assert all([retrieve, "call"] in events for events in view["retrieved"])
    for frame, t in zip(view["frames"], range(len(view["frames"]))):
        assert [view["memories"][i]["id"] for i in frame["ltm"]] == [m.id for m in episode.ltm(t)]
        assert len(frame["context"]) == len(episode.context(t))


def test_page_is_self_contained_and_inert(episodes):
    page = render_html([episodes["evil"], episodes["oracle"]])
    assert page.startswith("<!doctype html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.lower().count("</script") == 2  # the data element and the script, nothing from the data
    data = re.search(r'<script type="application/json" id="agemem-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data
    assert [m["content"] for m in json.loads(data)["episodes"][0]["memories"]] == [EVIL]  # intact after the round trip
    code = page.replace(data, "")  # the page without the (inert) recorded text
    assert not re.search(r"<(link|iframe|object|embed|img)\b", code, re.I)
    assert not re.search(r"\b(src|href)\s*=", code, re.I)
    assert not re.search(r"@import|url\(", code)
    urls = set(re.findall(r"https?://[^\s\"')]+", code))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace name, never fetched


def test_write_report_expands_folders(recordings, tmp_path):
    folder = recordings["oracle"].parent
    assert expand_paths([folder]) == [recordings["oracle"]]
    out = write_report([folder, recordings["store-all"]], tmp_path / "sub" / "r.html")
    data = re.search(r'id="agemem-data">(.*?)</script>', out.read_text(), re.S).group(1)
    names = [e["name"] for e in json.loads(data)["episodes"]]
    assert names == [f"oracle/{recordings['oracle'].name}", f"store-all/{recordings['store-all'].name}"]
    with pytest.raises(DataFormatError, match="no .jsonl"):
        expand_paths([tmp_path / "sub"])


def test_a_folder_of_rank_subfolders_is_expanded(recordings, tmp_path):
    """``agemem train --record DIR`` writes ``DIR/rank<r>/*.jsonl``: ``agemem view DIR`` finds them."""
    import shutil

    for rank, policy in enumerate(("oracle", "store-all")):
        (tmp_path / "rec" / f"rank{rank}").mkdir(parents=True)
        shutil.copy(recordings[policy], tmp_path / "rec" / f"rank{rank}" / "env0-00000-t.jsonl")
    found = expand_paths([tmp_path / "rec"])
    assert [p.parent.name for p in found] == ["rank0", "rank1"]
    out = write_report([tmp_path / "rec"], tmp_path / "r.html")
    data = re.search(r'id="agemem-data">(.*?)</script>', out.read_text(), re.S).group(1)
    assert [e["name"] for e in json.loads(data)["episodes"]] == ["rank0/env0-00000-t.jsonl", "rank1/env0-00000-t.jsonl"]
