"""The eval scripts' scoring functions on hand-computed cases (every metric can be < 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import bench, common, metrics, persona, quality, router
from persona_agents.repetition import repeated_run

# --- common -------------------------------------------------------------------------------


def test_read_jsonl_numbers_lines_and_skips_blanks(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    rows = common.read_jsonl(path)
    assert [r["a"] for r in rows] == [1, 2] and [r["_line"] for r in rows] == [1, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"a": 1}\n{oops\n', "d.jsonl:2: invalid JSON"), ("[1, 2]\n", "d.jsonl:1: expected a JSON object"), ("\n\n", "no rows")],
)
def test_read_jsonl_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(common.DataError, match=message):
        common.read_jsonl(path)


def test_read_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(common.DataError, match="not found"):
        common.read_jsonl(tmp_path / "nope.jsonl")


def test_emit_json_is_one_object_and_nan_safe(capsys: pytest.CaptureFixture[str]) -> None:
    common.emit({"x": float("nan"), "y": (1, 2)}, True, lambda r: print("table"))
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out) == {"x": None, "y": [1, 2]}
    common.emit({"x": 1}, False, lambda r: print("table", r["x"]))
    assert capsys.readouterr().out == "table 1\n"


def test_write_report_writes_json_markdown_and_png(tmp_path: Path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    written = common.write_report(tmp_path / "r", "demo", {"a": 0.5}, "# Demo", {"line": fig})
    names = sorted(p.name for p in written)
    assert names == ["demo.json", "demo.md", "demo_line.png"]
    assert json.loads((tmp_path / "r" / "demo.json").read_text()) == {"a": 0.5}
    assert "![demo_line](demo_line.png)" in (tmp_path / "r" / "demo.md").read_text()
    assert (tmp_path / "r" / "demo_line.png").read_bytes()[:4] == b"\x89PNG"


def test_median_mean_ratio() -> None:
    assert metrics.median([3.0, 1.0, 2.0, 10.0]) == 2.5
    assert metrics.mean([1, None, 3]) == 2 and metrics.mean([]) is None
    assert metrics.ratio(1.0, 0.0) is None and metrics.ratio(3.0, 2.0) == 1.5


# --- router -------------------------------------------------------------------------------


def test_router_sign_agreement_hand_computed() -> None:
    expects = [
        {"openness": "high", "neuroticism": "low"},  # both right
        {"agreeableness": "high"},  # wrong sign
        {"extraversion": "low", "openness": "high"},  # zero counts as wrong; openness right
    ]
    scores = [
        {"openness": 0.2, "conscientiousness": 0.0, "extraversion": 0.0, "agreeableness": 0.0, "neuroticism": -0.1},
        {"openness": 0.0, "conscientiousness": 0.0, "extraversion": 0.0, "agreeableness": -0.3, "neuroticism": 0.0},
        {"openness": 0.05, "conscientiousness": 0.0, "extraversion": 0.0, "agreeableness": 0.0, "neuroticism": 0.0},
    ]
    out = router.score_router(expects, scores)
    assert out["n"] == 3 and out["pairs"] == 5
    assert out["agreement"] == pytest.approx(3 / 5)
    assert out["per_trait"]["openness"] == {"agreement": 1.0, "n": 2}
    assert out["per_trait"]["agreeableness"] == {"agreement": 0.0, "n": 1}
    assert out["per_trait"]["conscientiousness"] == {"agreement": None, "n": 0}
    assert out["per_pole"]["extraversion_low"]["agreement"] == 0.0
    assert out["missed_rows"] == [(1, ["agreeableness"]), (2, ["extraversion"])]
    with pytest.raises(ValueError):
        router.score_router(expects, scores[:2])


def test_router_converter_keeps_test_split_and_poles() -> None:
    from persona_agents.training.corpus import Situation

    situations = [
        Situation(id="a", domain="counseling", text="t1", activation={"agreeableness_high": 0.6, "neuroticism_low": 0.4}, split="test"),
        Situation(id="b", domain="social", text="t2", activation={"openness_high": 1.0}, split="train"),
        Situation(id="c", domain="customer_service", text="t3", context=["earlier"], activation={"extraversion_low": 1.0}, split="test"),
    ]
    rows = router.situations_to_rows(situations)
    assert rows == [
        {"id": "a", "domain": "counseling", "text": "t1", "expect": {"agreeableness": "high", "neuroticism": "low"}},
        {"id": "c", "domain": "customer_service", "text": "t3", "expect": {"extraversion": "low"}, "context": ["earlier"]},
    ]


def test_router_default_set_matches_the_corpus() -> None:
    from persona_agents.training.corpus import load_situations

    shipped = [json.loads(line) for line in router.DEFAULT_DATA.read_text().splitlines() if line.strip()]
    assert shipped == router.situations_to_rows(load_situations())
    assert len(shipped) >= 50


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"domain": "x", "text": "hi", "expect": {"openness": "medium"}}, "unknown label 'medium'"),
        ({"domain": "x", "text": "hi", "expect": {"humour": "high"}}, "unknown trait 'humour'"),
        ({"domain": "x", "text": "hi", "expect": {}}, "'expect' must be"),
        ({"domain": "x", "text": "", "expect": {"openness": "high"}}, "'text' must be"),
    ],
)
def test_router_rejects_bad_rows(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(common.DataError, match=message):
        router.load_rows(path)


# --- persona ------------------------------------------------------------------------------


def test_share_as_pole() -> None:
    assert persona.share_as_pole([0.9, 0.2, 0.6, 0.5], "high") == 0.5
    assert persona.share_as_pole([0.9, 0.2, 0.6, 0.5], "low") == 0.5
    assert persona.share_as_pole([], "high") is None


def test_score_persona_hand_computed() -> None:
    probs = {
        "openness": {
            "expert_high": [0.9, 0.8, 0.3, 0.7],  # 3/4 high
            "expert_low": [0.1, 0.6, 0.4, 0.2],  # 3/4 low
            "routed": [0.6, 0.4, 0.4, 0.4],  # 1/4 high
            "base": [0.6, 0.6, 0.2, 0.4],  # 2/4 high, 2/4 low
            "prompt_high": [0.9, 0.9, 0.9, 0.9],  # 4/4 high
            "prompt_low": [0.9, 0.9, 0.9, 0.1],  # 1/4 low
        }
    }
    out = persona.score_persona(probs)
    high, low = out["per_expert"]["openness_high"], out["per_expert"]["openness_low"]
    assert high["expert_share_as_pole"] == 0.75 and high["base_share_as_pole"] == 0.5
    assert high["prompt_only_share_as_pole"] == 1.0 and high["expert_minus_prompt_only"] == pytest.approx(-0.25)
    assert high["routed_share_as_pole"] == 0.25
    assert low["expert_share_as_pole"] == 0.75 and low["prompt_only_share_as_pole"] == 0.25
    assert low["routed_share_as_pole"] == 0.75
    assert out["experts_above_base"] == 2 and out["experts_above_prompt_only"] == 1
    assert out["per_trait"]["openness"]["mean_prob_high"]["expert_high"] == pytest.approx(0.675)
    assert out["per_trait"]["openness"]["mean_prob_high"]["base"] == pytest.approx(0.45)
    assert out["mean_prompt_only_share_as_pole"] == pytest.approx(0.625)


def test_persona_rows_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"trait": "openness", "prompt": f"p{i}"}) + "\n" for i in range(3)))
    assert persona.prompts_by_trait(persona.load_rows(path), 2) == {"openness": ["p0", "p1"]}
    path.write_text(json.dumps({"trait": "charm", "prompt": "x"}) + "\n")
    with pytest.raises(common.DataError, match="unknown trait 'charm'"):
        persona.load_rows(path)


def test_persona_default_set_has_eight_prompts_per_trait() -> None:
    rows = persona.load_rows(persona.DEFAULT_DATA)
    for trait in persona.TRAITS:
        assert sum(r["trait"] == trait for r in rows) >= 8
    assert set(persona.POLE_DESCRIPTIONS) == {f"{t}_{p}" for t in persona.TRAITS for p in persona.POLES}


# --- quality: counseling ------------------------------------------------------------------


def test_content_words_and_stemming() -> None:
    assert quality.content_words("I'm feeling so worried about the exams") == {"feel", "worry", "exam"}
    assert quality.content_words("the and of") == set()


def test_reflection_by_cue_or_overlap() -> None:
    user = "I feel lonely since moving to a new city for work."
    assert quality.reflection(user, "It sounds like a hard time.")["reflects"] is True
    by_words = quality.reflection(user, "Moving city for work can be lonely.")
    assert by_words["cues"] == [] and by_words["shared_words"] == ["city", "lone", "mov", "work"]
    assert by_words["reflects"] is True
    assert quality.reflection(user, "Have you tried yoga?")["reflects"] is False


def test_open_questions() -> None:
    reply = "That is hard. What has helped before? Do you have a friend nearby? And how are you sleeping?"
    assert quality.questions(reply) == ["What has helped before?", "Do you have a friend nearby?", "And how are you sleeping?"]
    assert quality.open_questions(reply) == 2
    assert quality.open_questions("Do you know what happened?") == 0
    assert quality.open_questions("No questions here.") == 0


def test_counseling_checks_and_summary() -> None:
    a = quality.counseling_checks("I lost my job today.", "It sounds like a shock. What happened?", unsafe=False)
    b = quality.counseling_checks("I lost my job today.", "Try meditation.", unsafe=True)
    assert a["reflects"] and a["has_open_question"] and a["length_words"] == 7
    assert not b["reflects"] and not b["has_open_question"] and b["unsafe"]
    summary = quality.summarise_counseling([a, b])
    assert summary["reflection_rate"] == 0.5 and summary["open_question_rate"] == 0.5
    assert summary["unsafe_rate"] == 0.5 and summary["mean_length_words"] == 4.5


# --- quality: customer service ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rating", "reply", "fits"),
    [
        (5, "Thank you so much for the kind words!", True),
        (5, "We're sorry to hear that.", False),
        (1, "Thanks for your review.", False),
        (1, "We're so sorry about the delay.", True),
        (3, "We appreciate the feedback.", True),
        (3, "Noted.", False),
    ],
)
def test_tone_fits_rating(rating: int, reply: str, fits: bool) -> None:
    assert quality.tone_fits_rating(rating, reply) is fits


def test_invented_promise() -> None:
    assert quality.invented_promise("We will refund your order today.")
    assert quality.invented_promise("I'll happily replace it.")
    assert not quality.invented_promise("Please contact our Customer Care team so we can look into it.")


def test_complaints_addressed_hand_computed() -> None:
    out = quality.complaints_addressed(["delivery", "quality"], ["delivery", "staff/service"], rating=1)
    assert out["addressed"] == ["delivery"] and out["share"] == 0.5 and out["all"] is False
    assert quality.complaints_addressed(["delivery"], [], rating=5)["all"] is None  # praise: n/a
    assert quality.complaints_addressed([], [], rating=2)["all"] is None


def test_specific_words_ignore_generic_reply_words() -> None:
    review = "The kettle stopped working after two weeks."
    assert quality.specific_words(review, "Thank you for your feedback, we're sorry.") == []
    assert quality.specific_words(review, "Sorry the kettle stopped working so soon.") == ["kettle", "stopp", "work"]


def test_customer_service_checklist_real_aspects() -> None:
    from domains.reviews import aspects_in

    review = "The courier left my parcel in the rain and the box was broken."
    good = "We're sorry your delivery arrived damaged and the box was broken. Please contact our Customer Care team."
    bad = "Thanks for your review! We will refund you."
    g = quality.customer_service_checks(review, 1, good, aspects_in(review), aspects_in(good), blocked=False)
    b = quality.customer_service_checks(review, 1, bad, aspects_in(review), aspects_in(bad), blocked=True)
    assert g["tone_fits_rating"] and g["complaints_addressed"] and g["no_invented_promises"] and g["specific"]
    assert g["all_pass"] is True
    assert not b["tone_fits_rating"] and b["complaints_addressed"] is False and not b["no_invented_promises"]
    summary = quality.summarise_customer_service([g, b])
    assert summary["all_pass_rate"] == 0.5 and summary["no_invented_promises_rate"] == 0.5
    assert summary["complaints_addressed_n"] == 2


def test_rate_ignores_not_applicable() -> None:
    assert quality.rate([True, None, False, False]) == pytest.approx(1 / 3)
    assert quality.rate([None]) is None


# --- quality: judge parsing ---------------------------------------------------------------


def test_parse_scores_json_and_lines() -> None:
    text = 'Here you go: {"active_listening": 8, "empathy_validation": 7.4, "safety": 11, "boundaries": "6"}'
    scores = quality.parse_scores(text)
    assert scores["active_listening"] == 8 and scores["empathy_validation"] == 7
    assert scores["safety"] is None  # out of range
    assert scores["boundaries"] == 6 and scores["holistic_approach"] is None
    lines = quality.parse_scores("active_listening: 3\nsafety - 9")
    assert lines["active_listening"] == 3 and lines["safety"] == 9


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("A", "A"), ("b.", "B"), ("Reply B is better.", "B"), ("The better reply is A", "A"),
     ("It's a tie", "tie"), ("I cannot decide", None), ("**A**", "A")],
)
def test_parse_verdict(text: str, verdict: str | None) -> None:
    assert quality.parse_verdict(text) == verdict


def test_pairwise_both_orders_hand_computed() -> None:
    win = quality.pairwise_outcome("A", "B")  # persona chosen in both orders
    loss = quality.pairwise_outcome("B", "A")
    biased = quality.pairwise_outcome("A", "A")  # always the first reply: cancels out
    half = quality.pairwise_outcome("A", None)
    assert win == {"score": 1.0, "consistent": True}
    assert loss == {"score": 0.0, "consistent": True}
    assert biased == {"score": 0.5, "consistent": False}
    assert half == {"score": 1.0, "consistent": None}
    summary = quality.summarise_pairwise([win, loss, biased, quality.pairwise_outcome(None, None)])
    assert summary["win_rate"] == pytest.approx(0.5) and summary["n"] == 3 and summary["unparsed"] == 1
    assert (summary["wins"], summary["losses"], summary["ties"]) == (1, 1, 1)
    assert summary["position_consistency"] == pytest.approx(2 / 3)


def test_quality_rows_validation(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"text": "late parcel", "rating": 7}) + "\n")
    with pytest.raises(common.DataError, match="'rating' must be an integer from 1 to 5"):
        quality.load_rows(path, "customer_service")
    path.write_text(json.dumps({"text": "sad", "context": [3]}) + "\n")
    with pytest.raises(common.DataError, match="context items"):
        quality.load_rows(path, "counseling")
    path.write_text(json.dumps({"text": "sad", "context": ["before", {"role": "assistant", "content": "hm"}]}) + "\n")
    assert quality.load_rows(path, "counseling")[0]["context"] == [
        {"role": "user", "content": "before"}, {"role": "assistant", "content": "hm"}]


def test_quality_default_sets_have_twenty_rows() -> None:
    for domain in quality.DOMAINS:
        rows = quality.load_rows(common.DATA_DIR / f"quality_{domain}.jsonl", domain)
        assert len(rows) >= 20
    ratings = {r["rating"] for r in quality.load_rows(common.DATA_DIR / "quality_customer_service.jsonl", "customer_service")}
    assert ratings == {1, 2, 3, 4, 5}


# --- bench --------------------------------------------------------------------------------


def test_bench_summary_hand_computed() -> None:
    timings = {
        "mixture": [2.2, 2.0, 2.4],
        "base": [2.0, 1.9, 2.1],
        "peft_set_scale": [3.0, 3.0, 3.0],
        "peft_cat": [4.0, 4.2, 3.8],
        "prompt_only": [2.5, 2.4, 2.6],
    }
    out = bench.summarise(timings, router_s=[0.010, 0.020, 0.030], batch_s=[4.0, 5.0], sequential_s=[16.0, 14.0], new_tokens=32)
    assert out["medians_s"]["mixture"] == 2.2 and out["medians_s"]["base"] == 2.0
    assert out["mixture_over_base"] == pytest.approx(1.1)
    assert out["peft_set_scale_over_base"] == pytest.approx(1.5)
    assert out["peft_cat_over_base"] == pytest.approx(2.0)
    assert out["prompt_only_over_base"] == pytest.approx(1.25)
    assert out["router_ms"] == pytest.approx(20.0)
    assert out["batch8_speedup"] == pytest.approx(15.0 / 4.5)
    assert out["tokens_per_s"]["base"] == pytest.approx(16.0)
    assert out["targets"] == {"mixture_over_base <= 1.1": True, "batch8_speedup >= 2.0": True}
    slow = bench.summarise({"mixture": [3.0], "base": [2.0]}, [], [2.0], [3.0], 8)
    assert slow["targets"] == {"mixture_over_base <= 1.1": False, "batch8_speedup >= 2.0": False}
    assert slow["router_ms"] is None and slow["peft_cat_over_base"] is None


def test_bench_rotation_interleaves_arms() -> None:
    assert bench.rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert bench.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert bench.peak_rss_mb() > 0


# --- quality: loops, endings and invented details (both domains) ---------------------------


@pytest.mark.parametrize(
    ("reply", "run"),
    [
        ("It's a wake-up call, and it's a wake-up call. It's a Wake up call!", "it's a wake up"),
        ("no no no no no no", "no no no no"),  # overlapping starts count
        ("no no no no no", None),
        ("You are not alone. You are not alone, truly.", None),  # twice is not a loop
        ("", None),
    ],
)
def test_repeated_run_is_case_and_punctuation_blind(reply: str, run: str | None) -> None:
    assert repeated_run(reply) == run


def test_reply_checks_and_their_summary() -> None:
    looping = quality.reply_checks("counseling", "I feel lost.", "You are not alone. You are not alone. You are not alone")
    assert looping["repeated_run"] and looping["repeated_words"] == "you are not alone"
    phrase = quality.reply_checks("counseling", "Plan?", "What's the plan? What's the plan? What's the plan?")
    assert not phrase["repeated_run"] and phrase["repeated_phrase_words"] == "what's the plan"
    assert phrase["echoed_words"] == "what's the plan what's the"
    twice = quality.reply_checks("counseling", "I did it.", "I'm so proud of you. I'm so proud of you.")
    assert twice["echoed_run"] and not twice["repeated_phrase"]
    assert looping["ends_complete"] is False
    invented = quality.reply_checks("customer_service", "Broken kettle.", "Call us on 0800 123 4567. Enjoy 20% off next time.")
    assert invented["invented_contacts"] == ["invented_contact: phone number '0800 123 4567'"]
    assert invented["invented_facts"] and invented["invented_facts"][0].startswith("invented_fact: amount")
    repeated = quality.reply_checks("customer_service", "The £45 kettle broke.", "Sorry the £45 kettle broke.")
    assert repeated["invented_facts"] == [] and repeated["ends_complete"] is True
    summary = quality.summarise_shared([looping, invented, repeated])
    assert summary == {"repeated_run_rate": pytest.approx(1 / 3), "repeated_phrase_rate": pytest.approx(1 / 3),
                       "echoed_run_rate": pytest.approx(1 / 3),
                       "ends_complete_rate": pytest.approx(2 / 3),
                       "invented_contact_replies": 1, "invented_fact_replies": 1}
