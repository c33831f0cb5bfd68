import pytest

from agemem_gym.error import InvalidConfig
from agemem_gym.memory.context_ops import CosineFilter, ExtractiveSummarizer, LLMFilter, LLMSummarizer
from agemem_gym.memory.stm import ApproxTokenCounter, HFTokenCounter, ShortTermMemory


def test_approx_counter_counts_and_truncates_on_character_boundaries():
    c = ApproxTokenCounter()
    assert c.count("") == 0 and c.count("abcd") == 1 and c.count("abcde") == 2
    text = "東京" * 10  # 3 bytes per character
    cut = c.truncate(text, 2)
    assert text.startswith(cut) and len(cut.encode()) <= 8 and cut == "東京"
    assert c.truncate("short", 100) == "short" and c.truncate("x", 0) == ""


def test_append_remove_replace_keep_token_accounting():
    stm = ShortTermMemory()
    stm.append("system", "You are helpful.", pinned=True, kind="system")
    for i in range(5):
        stm.append("user", f"message number {i} " * 3)
    total = stm.tokens
    removed = stm.remove([2, 4])
    assert [m.content.split()[2] for m in removed] == ["1", "3"]
    assert stm.tokens == total - sum(m.tokens for m in removed)
    summary = stm.make("tool", "[summary] stuff", kind="summary")
    stm.replace([1, 2], summary)
    assert stm[1].kind == "summary" and len(stm) == 3
    stm.check_invariants()
    stm.clear(keep_system=True)
    assert len(stm) == 1 and stm.tokens == stm[0].tokens
    with pytest.raises(IndexError):
        stm.remove([7])
    with pytest.raises(InvalidConfig, match="role"):
        stm.append("narrator", "x")


def test_pack_keeps_pinned_newest_and_cuts_one():
    stm = ShortTermMemory()
    stm.append("system", "S" * 40, pinned=True)  # 10 + 4 tokens
    for i in range(4):
        stm.append("user", f"{i}" * 200)  # 50 + 4 tokens each
    stm.append("user", "query " * 5, pinned=True)
    packed = stm.pack(budget=150)
    assert packed.overflow and packed.full_tokens == stm.tokens
    assert packed.indices[0] == 0 and packed.indices[-1] == 5  # pinned at both ends
    assert packed.tokens <= 150
    assert packed.cut_index in packed.indices
    cut = packed.messages[packed.indices.index(packed.cut_index)]
    assert len(cut.content) < 200
    assert 4 in packed.indices and packed.dropped >= 1  # newest unpinned kept
    roomy = stm.pack(budget=10_000)
    assert not roomy.overflow and roomy.as_chat() == stm.as_chat()


def test_pack_with_pinned_over_budget_reports_overflow():
    stm = ShortTermMemory()
    stm.append("system", "x" * 400, pinned=True)
    stm.append("user", "hello")
    packed = stm.pack(budget=50)
    assert [m.role for m in packed.messages] == ["system"] and packed.overflow


def test_hf_token_counter_with_a_real_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    counter = HFTokenCounter(hf)
    assert counter.count("hello world hello") == 3
    assert counter.truncate("hello world hello", 2) == "hello world"
    stm = ShortTermMemory(counter, message_overhead=2)
    stm.append("user", "hello world")
    assert stm.tokens == 4
    with pytest.raises(InvalidConfig):
        HFTokenCounter(object())


def _msgs(*texts):
    stm = ShortTermMemory()
    for t in texts:
        stm.append("user", t)
    return list(stm)


def test_extractive_summary_is_deterministic_budgeted_and_salient():
    msgs = _msgs(
        "The launch of the rocket was delayed. Weather was bad. The rocket engineers fixed a valve.",
        "Lunch was pasta. The rocket launch is now set for Friday.",
    )
    s = ExtractiveSummarizer()
    out = s.summarize(msgs, max_tokens=30)
    assert out == s.summarize(msgs, max_tokens=30)
    assert ApproxTokenCounter().count(out) <= 30
    assert "rocket" in out and "pasta" not in out
    assert s.summarize([], 30) == ""
    assert s.summarize(msgs, 3) != ""  # the best sentence cut to fit


def test_cosine_filter_removes_matching_messages_only():
    msgs = _msgs("The weather in Paris is sunny today.", "Gutzon Borglum sculpted Mount Rushmore.")
    f = CosineFilter(threshold=0.6)
    mask = f.select(msgs, "The weather in Paris is sunny today")
    assert mask.tolist() == [True, False]
    assert f.select([], "x").shape == (0,)
    with pytest.raises(InvalidConfig):
        CosineFilter(threshold=2)


def test_llm_backed_executors_use_the_chat_callable():
    seen = []

    def chat(messages):
        seen.append(messages[-1]["content"])
        return "0.9" if "rocket" in messages[-1]["content"].split("Message:")[-1] else "no idea"

    msgs = _msgs("rocket news", "cake recipe")
    assert LLMFilter(chat).select(msgs, "space").tolist() == [True, False]
    summary = LLMSummarizer(lambda m: "  a short summary  ").summarize(msgs, 100)
    assert summary == "a short summary" and "rocket news" in seen[0]
    with pytest.raises(InvalidConfig):
        LLMSummarizer(lambda m: "x", prompt="no slot")
