"""StaticDecoder on the tiny PaliGemma 2: static cache, left-padded batches and
the compiled decode step give the same greedy answers as ``model.generate``.

The compiled tests use the ``aot_eager`` backend (dynamo graph capture and
AOT autograd, no C++ code generation) so that they run in seconds on any CPU;
``test_inductor_step_equals_eager`` runs the real inductor backend (needs a C
compiler, present here: /usr/bin/gcc).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from core.engine.compiled import TEXT_BUDGETS, Row, StaticDecoder, batch_bucket
from core.engine.decoding import check_mode

CASES = [  # (image colour, prompt, max new tokens)
    ((200, 30, 30), "segment cat", 24),  # one object
    ((20, 130, 30), "detect cat ; dog ; the big brown bird on the left", 30),
    ((20, 30, 230), "ocr", 8),  # short answer, shortest prompt
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    from transformers import AutoProcessor, PaliGemmaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = PaliGemmaForConditionalGeneration.from_pretrained(
        tiny_model_dir, dtype=torch.float32
    ).eval()
    return processor, model


def _inputs(processor, colour, prompt):
    image = Image.new("RGB", (40, 30), colour)
    return processor(images=image, text="<image>" + prompt, return_tensors="pt")


@pytest.fixture(scope="module")
def reference(tiny):
    """Per case: the prompt Row, image features, generate's ids and raw logits."""
    processor, model = tiny
    out = []
    with torch.inference_mode():
        for colour, prompt, budget in CASES:
            inputs = _inputs(processor, colour, prompt)
            generated = model.generate(
                **inputs,
                max_new_tokens=budget,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
            )
            start = inputs["input_ids"].shape[1]
            features = model.get_image_features(inputs["pixel_values"]).pooler_output
            row = Row(
                inputs["input_ids"][0].tolist(), inputs["token_type_ids"][0].tolist()
            )
            logits = torch.stack([step[0] for step in generated.logits])
            out.append((row, features, generated.sequences[0, start:].tolist(), logits))
    return out


def _decoder(model, processor, **options) -> StaticDecoder:
    options.setdefault("compile_step", False)
    return StaticDecoder(
        model,
        image_tokens=processor.image_seq_length,
        batch_max=options.pop("batch_max", 4),
        pad_token_id=processor.tokenizer.pad_token_id,
        **options,
    )


def _decode(decoder, model, rows, features, budget):
    """Greedy decode; returns (ids per row, logits [rows, steps, vocab])."""
    seen: list[torch.Tensor] = []

    def pick(logits):  # greedy, recording what the step produced
        seen.append(logits[: len(rows)].clone())
        return logits.argmax(-1)

    eos = {model.generation_config.eos_token_id}
    with torch.inference_mode():
        ids = decoder.decode(
            rows, features, max_new_tokens=budget, eos_ids=eos, pick=pick
        )
    return ids, torch.stack(seen, dim=1)


def test_static_cache_matches_generate(tiny, reference) -> None:
    processor, model = tiny
    decoder = _decoder(model, processor)
    for (row, features, expected, logits), (_, _, budget) in zip(
        reference, CASES, strict=True
    ):
        ids, seen = _decode(decoder, model, [row], features, budget)
        assert ids == [expected]
        # same numbers, not only the same argmax: the bidirectional prefix mask
        # and the positions are the ones generate uses
        torch.testing.assert_close(seen[0], logits[: seen.shape[1]], atol=1e-4, rtol=0)


def test_left_padded_batch_equals_one_at_a_time(tiny, reference) -> None:
    processor, model = tiny
    decoder = _decoder(model, processor)
    rows = [case[0] for case in reference]
    assert len({len(row.input_ids) for row in rows}) == len(rows)  # real padding
    features = torch.cat([case[1] for case in reference])
    budget = max(case[2] for case in CASES)
    batched, seen = _decode(decoder, model, rows, features, budget)
    for b, (_, _, expected, logits) in enumerate(reference):
        assert batched[b][: len(expected)] == expected
        steps = min(len(expected), seen.shape[1])
        torch.testing.assert_close(seen[b, :steps], logits[:steps], atol=1e-4, rtol=0)
    assert (4, processor.image_seq_length + TEXT_BUDGETS[0]) in decoder.warmed


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_step_equals_eager(tiny, reference, backend) -> None:
    processor, model = tiny
    eager = _decoder(model, processor, batch_max=1)
    compiled = _decoder(
        model, processor, batch_max=1, compile_step=True, backend=backend, mode=None
    )
    row, features, expected, _ = reference[0]
    budget = CASES[0][2]
    eager_ids, eager_logits = _decode(eager, model, [row], features, budget)
    compiled_ids, compiled_logits = _decode(compiled, model, [row], features, budget)
    # the step really went through torch.compile (a dynamo-wrapped callable)
    assert hasattr(compiled._compiled_step, "_torchdynamo_orig_callable")
    assert compiled_ids == eager_ids == [expected]
    torch.testing.assert_close(compiled_logits, eager_logits, atol=1e-5, rtol=0)


def test_cache_is_reused_and_reset_between_requests(tiny, reference) -> None:
    processor, model = tiny
    decoder = _decoder(model, processor, batch_max=1)
    first = _decode(decoder, model, [reference[0][0]], reference[0][1], 10)[0]
    _decode(decoder, model, [reference[1][0]], reference[1][1], 10)
    again = _decode(decoder, model, [reference[0][0]], reference[0][1], 10)[0]
    assert again == first
    assert len(decoder._caches) == 1  # one kept cache for this shape


def test_answers_longer_than_the_budgets_run_eager(tiny) -> None:
    processor, model = tiny
    decoder = _decoder(model, processor, batch_max=1, compile_step=False)
    decoder.compiled = True  # as if compiled: the long request must not be
    length, compiled = decoder.cache_len(TEXT_BUDGETS[-1] + 1)
    assert not compiled and length == processor.image_seq_length + TEXT_BUDGETS[-1] + 1
    assert decoder.cache_len(TEXT_BUDGETS[0]) == (
        processor.image_seq_length + TEXT_BUDGETS[0],
        True,
    )


@pytest.mark.parametrize(
    "rows, batch_max, expected",
    [
        (1, 8, 1),  # alone
        (3, 8, 4),  # next power of two
        (5, 8, 8),
        (5, 6, 6),  # never above batch_max
        (8, 8, 8),
    ],
)
def test_batch_bucket(rows, batch_max, expected) -> None:
    assert batch_bucket(rows, batch_max) == expected


def test_batch_bucket_refuses_more_rows_than_batch_max() -> None:
    with pytest.raises(ValueError, match=r"rows must be in 1\.\.4, got 5"):
        batch_bucket(5, 4)


def test_compile_mode_is_checked() -> None:
    assert check_mode("off") == "off"
    with pytest.raises(ValueError, match="COMPILE must be one of auto, on, off"):
        check_mode("yes")


def test_chainlit_lazy_getattr_no_longer_breaks_inductor_cache_keys():
    """In the app chainlit is loaded; its lazy __getattr__ raised KeyError for
    unknown names, which made every inductor compile fail (KeyError: 'torch')."""
    import chainlit

    from core.engine.compiled import lazy_getattr_raises_attribute_error

    lazy_getattr_raises_attribute_error()
    assert not hasattr(chainlit, "torch")  # AttributeError, not KeyError
    assert chainlit.Message is not None  # lazy names still resolve
