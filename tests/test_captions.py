"""Caption text from booru tags, and the post filters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.sources.booru.base import Post
from app.sources.captions import CaptionOptions, PostFilters, build_caption

TAGS = ["1girl", "hifumi_(blue_archive)", "^_^", ">_<", "long_hair", "blue_archive", "highres", "artist_name"]
CATEGORIES = {
    "1girl": "general", "hifumi_(blue_archive)": "character", "long_hair": "general",
    "blue_archive": "copyright", "highres": "metadata", "artist_name": "artist",
}


def test_defaults_remove_underscores_escape_and_join_with_comma() -> None:
    assert build_caption(TAGS) == (
        r"1girl, hifumi \(blue archive\), ^_^, >_<, long hair, blue archive, highres, artist name"
    )


def test_short_emoticons_keep_their_underscores() -> None:
    assert build_caption(["^_^", "o_o", "a_b_c"], CaptionOptions()) == "^_^, o_o, a b c"


def test_keep_underscores() -> None:
    assert build_caption(["long_hair", "^_^"], CaptionOptions(remove_underscore=False)) == "long_hair, ^_^"


def test_escaping_can_be_switched_off() -> None:
    assert build_caption(["hifumi_(blue_archive)"], CaptionOptions(escape_parentheses=False)) == "hifumi (blue archive)"


def test_separator() -> None:
    assert build_caption(["a_tag", "b_tag"], CaptionOptions(separator=" ")) == "a tag b tag"


def test_category_order_keeps_site_order_within_a_category_and_puts_unlisted_last() -> None:
    options = CaptionOptions(category_order=["character", "copyright", "artist", "general"], escape_parentheses=False)
    caption = build_caption(TAGS, options, CATEGORIES)
    assert caption.split(", ") == [
        "hifumi (blue archive)", "blue archive", "artist name", "1girl", "^_^", ">_<", "long hair", "highres",
    ]


def test_drop_categories_and_uncategorised_tags_count_as_general() -> None:
    options = CaptionOptions(drop_categories=["metadata", "artist"], remove_underscore=False, escape_parentheses=False)
    caption = build_caption(TAGS, options, CATEGORIES)
    assert "highres" not in caption and "artist_name" not in caption and "^_^" in caption
    assert build_caption(["x", "y"], CaptionOptions(drop_categories=["general"]), {"y": "character"}) == "y"


def test_category_lists_accept_strings_and_aliases() -> None:
    options = CaptionOptions.model_validate({"category_order": "character,copyright meta", "drop_categories": "Meta"})
    assert options.category_order == ["character", "copyright", "metadata"]
    assert options.drop_categories == ["metadata"]


def test_unknown_category_is_a_clear_validation_error() -> None:
    with pytest.raises(ValidationError) as err:
        CaptionOptions(category_order=["characters", "colour"])
    assert "unknown tag category 'colour'" in str(err.value) and "copyright" in str(err.value)


def test_unknown_caption_key_is_refused() -> None:
    with pytest.raises(ValidationError):
        CaptionOptions.model_validate({"remove_underscores": False})


def post(**fields: object) -> Post:
    values: dict[str, object] = {"tags": ["1girl", "long_hair"], "rating": "general", "score": 10, "width": 800, "height": 600}
    values.update(fields)
    return Post(**values)  # type: ignore[arg-type]


def test_no_filters_keep_everything() -> None:
    assert PostFilters().matches(post(rating="explicit", score=-5, width=0))


def test_rating_filter_with_aliases() -> None:
    filters = PostFilters.model_validate({"rating": "g,s"})
    assert filters.rating == ["general", "sensitive"]
    assert filters.matches(post(rating="sensitive")) and not filters.matches(post(rating="explicit"))


def test_unknown_rating_is_a_clear_validation_error() -> None:
    with pytest.raises(ValidationError) as err:
        PostFilters(rating=["safe", "nsfw"])
    assert "unknown rating 'nsfw'" in str(err.value)


def test_min_width_height_and_score() -> None:
    assert not PostFilters(min_width=801).matches(post())
    assert PostFilters(min_width=800).matches(post())
    assert not PostFilters(min_height=601).matches(post())
    assert not PostFilters(min_score=11).matches(post())
    assert PostFilters(min_score=10).matches(post())


def test_blacklist_by_tag_with_spaces_and_wildcards() -> None:
    assert PostFilters.model_validate({"blacklist": "long_hair cat_ears"}).blacklist == ["long_hair", "cat_ears"]
    assert not PostFilters(blacklist=["long hair"]).matches(post())
    assert not PostFilters(blacklist=["long_*"]).matches(post())
    assert PostFilters(blacklist=["short_hair", "2girls"]).matches(post())
