"""FLAN 2021 summarization cluster: AESLC, CNN/DailyMail, Gigaword, MultiNews, Newsroom,
SAMSum, XSum, AG News, Opinion Abstracts (Rotten Tomatoes, iDebate), WikiLingua (English).

AG News sits here as in the paper (a news article's topic is a one-word summary of it) and is
the cluster's only classification dataset. Newsroom, SAMSum and XSum need manual downloads;
their TfdsSource.manual_download says which files go where.
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021 import common
from tasks.flan2021.common import COLLECTION, TFDS_MANUAL_DIR, t, turned
from tasks.spec import DatasetSpec, TfdsSource

CLUSTER = "summarization"


# ---- AESLC (email subject lines) --------------------------------------------------------


def aeslc_fields(ex):
    # As the release: the body on one line, the subject without line breaks.
    return {"email": tf.strings.regex_replace(ex["email_body"], "\n", " "),
            "subject": tf.strings.regex_replace(ex["subject_line"], "\n", "")}


def _aeslc_not_empty(fields):
    # The release drops records whose body and subject are both empty.
    return tf.strings.length(tf.strings.strip(
        tf.strings.join([fields["email"], fields["subject"]]))) > 0


AESLC_TEMPLATES = [
    t("{email}\n\nWrite a subject line for this email.", "{subject}"),
    t("What would be a good subject line for the following message?\n\n{email}", "{subject}"),
    t("Email:\n{email}\n\nSubject:", "{subject}"),
    t("Here is the body of an email.\n{email}\nGive it a short, informative title.",
      "{subject}"),
    t("Summarize this email in a few words, as its subject would.\n\n{email}", "{subject}"),
    t("I'm about to send this:\n\"{email}\"\nSuggest a subject.", "{subject}"),
    t("{email}\n\nWhat is this email about? Answer with a subject line.", "{subject}"),
    t("Generate the subject for this office email: {email}", "{subject}"),
    turned("Write an email with the subject line \"{subject}\".", "{email}"),
    turned("Subject: {subject}\n\nCompose the body of this email.", "{email}"),
]


# ---- CNN / Daily Mail -------------------------------------------------------------------


def cnn_dailymail_fields(ex):
    # The release strips the dateline ("LONDON, England (CNN) -- ", "... 2013 . "): the text
    # after the last of these separators is the article.
    article = ex["article"]
    for separator in ("2013 . ", "2014 . ", "2012 . ", ") -- "):
        article = tf.strings.split(tf.reshape(article, [1]), sep=separator)[0][-1]
    return {"article": article, "highlights": ex["highlights"]}


CNN_DAILYMAIL_TEMPLATES = [
    t("{article}\n\nWrite the key points of this article as highlights.", "{highlights}"),
    t("Summarize this news story in a few sentences:\n\n{article}", "{highlights}"),
    t("Article: {article}\n\nHighlights:", "{highlights}"),
    t("What are the main takeaways of the following report?\n{article}", "{highlights}"),
    t("{article}\n\nTL;DR:", "{highlights}"),
    t("Give a short bullet-style summary of this article.\n\n{article}", "{highlights}"),
    t("Read this news piece and condense it.\n{article}", "{highlights}"),
    t("Someone only has a minute. Tell them what this article says.\n\n{article}",
      "{highlights}"),
    turned("Highlights: {highlights}\n\nWrite a news article that covers these points.",
       "{article}"),
    turned("Expand these news highlights into a full story:\n{highlights}", "{article}"),
]


# ---- Gigaword (first sentence -> headline) ----------------------------------------------


def gigaword_fields(ex):
    return {"text": ex["document"], "headline": ex["summary"]}


def _gigaword_clean(fields):
    # As the release: drop records whose sentence or headline has an UNK token or a `#`
    # (Gigaword's placeholder for digits).
    text = tf.strings.join([fields["text"], fields["headline"]], separator=" ")
    return tf.logical_not(tf.strings.regex_full_match(text, r"(?s).*(UNK|#).*"))


GIGAWORD_TEMPLATES = [
    t("{text}\n\nWrite a headline for this.", "{headline}"),
    t("Give this news sentence a short title: {text}", "{headline}"),
    t("Sentence: {text}\nHeadline:", "{headline}"),
    t("Compress the following into a newspaper headline.\n\n{text}", "{headline}"),
    t("What is a brief summary of this? {text}", "{headline}"),
    t("{text}\nSummarize in a handful of words.", "{headline}"),
    t("Here is the opening line of a news wire story:\n{text}\nWhat headline ran with it?",
      "{headline}"),
    t("Shorten this to a headline: {text}", "{headline}"),
    turned("Headline: {headline}\n\nWrite the first sentence of the news story.", "{text}"),
    turned("Write a one-sentence news lead for the headline \"{headline}\".", "{text}"),
]


# ---- MultiNews --------------------------------------------------------------------------


def multi_news_fields(ex):
    # Source articles are separated by "|||||"; summaries start with an en dash.
    articles = tf.strings.regex_replace(ex["document"], r"\s*\|\|\|\|\|\s*", "\n\n")
    summary = tf.strings.regex_replace(ex["summary"], r"^\s*–\s*", "")
    return {"articles": tf.strings.strip(articles), "summary": summary}


MULTI_NEWS_TEMPLATES = [
    t("{articles}\n\nWrite a summary that combines what these news articles report.",
      "{summary}"),
    t("Several outlets covered the same story:\n\n{articles}\n\nSummarize the coverage.",
      "{summary}"),
    t("Articles:\n{articles}\n\nSummary:", "{summary}"),
    t("Merge the following reports into one concise news summary.\n\n{articles}",
      "{summary}"),
    t("{articles}\n\nWhat is the overall story here? Write a short news brief.", "{summary}"),
    t("Read these sources and write a digest of them.\n{articles}", "{summary}"),
    t("Give a multi-document summary of the text below.\n\n{articles}", "{summary}"),
    t("Here are a few related news pieces. Sum them up in a paragraph.\n\n{articles}",
      "{summary}"),
    turned("Summary: {summary}\n\nWrite a news article that this summary could be based on.",
       "{articles}"),
    turned("Write the full news report behind this brief: {summary}", "{articles}"),
]


# ---- Newsroom ---------------------------------------------------------------------------


def newsroom_fields(ex):
    return {"title": ex["title"], "article": ex["text"], "summary": ex["summary"]}


NEWSROOM_TEMPLATES = [
    t("{article}\n\nSummarize the article above.", "{summary}"),
    t("Title: {title}\n\n{article}\n\nWhat is a short summary of this article?", "{summary}"),
    t("Write a blurb for this story, \"{title}\":\n\n{article}", "{summary}"),
    t("Article: {article}\nSummary:", "{summary}"),
    t("Here is a news article.\n{article}\nGive the gist in a sentence or two.", "{summary}"),
    t("{title}\n{article}\n\nCondense this into a teaser.", "{summary}"),
    t("How would you describe this article in brief?\n\n{article}", "{summary}"),
    t("Make a short summary of the article \"{title}\".\n{article}", "{summary}"),
    turned("Write an article titled \"{title}\" that matches this summary: {summary}",
       "{article}"),
    turned("Summary: {summary}\n\nWrite the news article it summarizes.", "{article}"),
]


# ---- SAMSum (dialogue summaries) --------------------------------------------------------


def samsum_fields(ex):
    # Windows line ends and <file_photo>-style markup go, as in the release.
    dialogue = tf.strings.regex_replace(ex["dialogue"], "\r\n", "\n")
    dialogue = tf.strings.regex_replace(dialogue, "<.*>", " ")
    return {"dialogue": dialogue, "summary": ex["summary"]}


SAMSUM_TEMPLATES = [
    t("{dialogue}\n\nSummarize this conversation.", "{summary}"),
    t("Here is a chat between friends:\n{dialogue}\n\nWhat happened in it?", "{summary}"),
    t("Dialogue:\n{dialogue}\n\nSummary:", "{summary}"),
    t("Write a third-person summary of these messages.\n\n{dialogue}", "{summary}"),
    t("{dialogue}\nBriefly, what did they talk about?", "{summary}"),
    t("Read the messenger conversation and sum it up in a sentence or two.\n\n{dialogue}",
      "{summary}"),
    t("What is the upshot of this exchange?\n{dialogue}", "{summary}"),
    t("Give me the short version of this chat:\n\n{dialogue}", "{summary}"),
    turned("Write a short messenger conversation that matches this summary: {summary}",
       "{dialogue}"),
    turned("{summary}\n\nWrite the chat that could have led to this summary.", "{dialogue}"),
]


# ---- XSum (one-sentence summaries) ------------------------------------------------------


def xsum_fields(ex):
    return {"article": ex["document"], "summary": ex["summary"]}


XSUM_TEMPLATES = [
    t("{article}\n\nSummarize this in one sentence.", "{summary}"),
    t("What is this article about, in a single sentence?\n\n{article}", "{summary}"),
    t("Article: {article}\n\nOne-line summary:", "{summary}"),
    t("Write an extreme summary (a single sentence) of the BBC story below.\n\n{article}",
      "{summary}"),
    t("{article}\nGive the gist in one sentence.", "{summary}"),
    t("Read the following and tell me the main point in one sentence.\n{article}",
      "{summary}"),
    t("Here's a news report:\n{article}\n\nWhat's the one-sentence takeaway?", "{summary}"),
    t("Boil this article down to a sentence: {article}", "{summary}"),
    turned("Write a news article that could be summed up as: {summary}", "{article}"),
    turned("One-sentence summary: {summary}\n\nNow write the full article.", "{article}"),
]


# ---- AG News (topic classification) -----------------------------------------------------

# In the order of TFDS's ClassLabel: World, Sports, Business, Sci/Tech.
AG_NEWS_OPTIONS = ["World", "Sports", "Business", "Science/Tech"]


def ag_news_fields(ex):
    return {
        "title": ex["title"],
        "description": ex["description"],
        "answer": common.label_text(ex["label"], AG_NEWS_OPTIONS),
    }


AG_NEWS_TEMPLATES = [
    t("{title}\n\n{description}\n\nWhich topic is this article about?", "{answer}"),
    t("Classify this news item by section: {title} - {description}", "{answer}"),
    t("Headline: {title}\nSnippet: {description}\nTopic:", "{answer}"),
    t("What section of the newspaper would run this story?\n\n{title}. {description}",
      "{answer}"),
    t("{description}\n\nIs this about world news, sports, business or science and "
      "technology?", "{answer}"),
    t("Choose the category of the news below.\n{title}\n{description}", "{answer}"),
    t("Here is a news summary: \"{description}\" What is it mainly about?", "{answer}"),
    t("{title}\nWhat kind of news is this?", "{answer}"),
    turned("Write a short news snippet about {answer}.", "{description}"),
    turned("Topic: {answer}\n\nWrite a headline for a story in this section.", "{title}"),
]


# ---- Opinion Abstracts (Rotten Tomatoes, iDebate) ---------------------------------------


def rotten_tomatoes_fields(ex):
    return {
        "movie": ex["_movie_name"],
        # The release shows the first ten reviews, numbered.
        "reviews": common.numbered(ex["_critics"]["value"][:10]),
        "consensus": ex["_critic_consensus"],
    }


ROTTEN_TOMATOES_TEMPLATES = [
    t("Critics said this about {movie}:\n{reviews}\n\nWrite the critics' consensus.",
      "{consensus}"),
    t("{reviews}\n\nSummarize these movie reviews in one or two sentences.", "{consensus}"),
    t("Movie: {movie}\nReviews:\n{reviews}\n\nConsensus:", "{consensus}"),
    t("Here are several critics' takes on {movie}. What do they agree on overall?\n\n"
      "{reviews}", "{consensus}"),
    t("Condense the following reviews into a single verdict.\n{reviews}", "{consensus}"),
    t("Read what reviewers wrote and give the overall opinion of the film.\n\n{reviews}",
      "{consensus}"),
    t("{reviews}\n\nBased on these reviews, how was {movie} received?", "{consensus}"),
    t("Write a Rotten Tomatoes style consensus for {movie} from these snippets:\n{reviews}",
      "{consensus}"),
    turned("The critics' consensus on {movie} is: \"{consensus}\"\n\nWrite some review snippets "
       "that led to it.", "{reviews}"),
    turned("Consensus: {consensus}\n\nWhat might individual critics have written about {movie}?",
       "{reviews}"),
]


def idebate_fields(ex):
    return {
        "debate": ex["_debate_name"],
        "arguments": common.numbered(ex["_argument_sentences"]["value"][:10]),
        "claim": ex["_claim"],
    }


IDEBATE_TEMPLATES = [
    t("Debate: {debate}\n\nArgument: {arguments}\n\nState the claim this argument makes.",
      "{claim}"),
    t("{arguments}\n\nWhat is the main point being argued here?", "{claim}"),
    t("Summarize the following argument in a single sentence.\n\n{arguments}", "{claim}"),
    t("Topic: {debate}\nSupporting text: {arguments}\nClaim:", "{claim}"),
    t("In the debate \"{debate}\", someone wrote:\n{arguments}\n\nWhat is their position, "
      "in short?", "{claim}"),
    t("Give this argument a one-line headline.\n{arguments}", "{claim}"),
    t("Read this debate argument and write the thesis it defends.\n\n{arguments}",
      "{claim}"),
    t("{debate}\n{arguments}\n\nSum up the argument.", "{claim}"),
    turned("In a debate on \"{debate}\", write an argument supporting the claim: {claim}",
       "{arguments}"),
    turned("Claim: {claim}\n\nBack up this claim with a short argument.", "{arguments}"),
]


# ---- WikiLingua (English how-to articles) -----------------------------------------------


def wiki_lingua_fields(ex):
    return {"article": ex["source"], "summary": ex["target"]}


WIKI_LINGUA_TEMPLATES = [
    t("{article}\n\nSummarize the steps above.", "{summary}"),
    t("Here is a how-to guide:\n{article}\n\nWrite a short summary of it.", "{summary}"),
    t("Article: {article}\n\nSummary:", "{summary}"),
    t("What are the main instructions in this text?\n\n{article}", "{summary}"),
    t("{article}\nCondense these instructions into a few sentences.", "{summary}"),
    t("Give a brief overview of what this wikiHow article tells you to do.\n\n{article}",
      "{summary}"),
    t("Read the guide and list its essential steps in prose.\n{article}", "{summary}"),
    t("TL;DR of the following how-to: {article}", "{summary}"),
    turned("Summary: {summary}\n\nWrite the detailed how-to article behind this summary.",
       "{article}"),
    turned("Expand these short instructions into a full guide: {summary}", "{article}"),
]


def _opinion_source(name: str) -> TfdsSource:
    return TfdsSource(name=name, splits={
        "train": "train[:-600]", "validation": "train[-600:-500]", "test": "train[-500:]"})


def _spec(name, display_name, source, templates, fields_fn, **kwargs) -> DatasetSpec:
    kwargs.setdefault("metric_fns", [metrics.rouge])
    # The release evaluates on the labelled test split; every source here has one.
    kwargs.setdefault("eval_split", "test")
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER, source=source, templates=templates,
        fields_fn=common.graph_fields(fields_fn), display_name=display_name, **kwargs,
    )


DATASETS: list[DatasetSpec] = [
    _spec("aeslc", "AESLC", common.source("aeslc:1.0.0", test="test"), AESLC_TEMPLATES,
          aeslc_fields, filter_fn=_aeslc_not_empty),
    _spec("cnn_dailymail", "CNN/DailyMail", common.source("cnn_dailymail:3.4.0", test="test"),
          CNN_DAILYMAIL_TEMPLATES, cnn_dailymail_fields),
    _spec("gigaword", "Gigaword", common.source("gigaword:1.2.0", test="test"), GIGAWORD_TEMPLATES,
          gigaword_fields, filter_fn=_gigaword_clean),
    _spec("multi_news", "Multi-News", common.source("multi_news:2.1.0", test="test"),
          MULTI_NEWS_TEMPLATES, multi_news_fields),
    _spec("newsroom", "Newsroom", common.source("newsroom:1.0.0", test="test", manual_download=(
              "Register at https://summari.es/download/ and download the Newsroom release; "
              f"put train.jsonl, dev.jsonl and test.jsonl (unzipped) in {TFDS_MANUAL_DIR}")),
          NEWSROOM_TEMPLATES, newsroom_fields),
    _spec("samsum", "SAMSum", common.source("samsum:1.0.0", test="test", manual_download=(
              "Download https://arxiv.org/src/1911.12237v2/anc/corpus.7z, extract it and put "
              f"train.json, val.json and test.json in {TFDS_MANUAL_DIR}")),
          SAMSUM_TEMPLATES, samsum_fields),
    _spec("xsum", "XSum", common.source("xsum:1.0.0", test="test", manual_download=(
              "Build xsum-extracts-from-downloads.tar.gz with the scripts described at "
              "https://github.com/EdinburghNLP/XSum/blob/master/XSum-Dataset/README.md and put "
              f"it in {TFDS_MANUAL_DIR}")),
          XSUM_TEMPLATES, xsum_fields),
    # AG News has train and (labeled) test only.
    _spec("ag_news_subset", "AG News",
          common.source("ag_news_subset:1.0.0", validation=None, test="test"),
          AG_NEWS_TEMPLATES, ag_news_fields, options=AG_NEWS_OPTIONS,
          metric_fns=[metrics.accuracy], eval_split="test"),
    # Opinion Abstracts ship a train split only: as in the release, the last 500 train
    # examples are the test set and the 100 before them validation.
    _spec("opinion_abstracts_rotten_tomatoes", "Opinion Abstracts (Rotten Tomatoes)",
          _opinion_source("opinion_abstracts/rotten_tomatoes:1.0.0"),
          ROTTEN_TOMATOES_TEMPLATES, rotten_tomatoes_fields),
    _spec("opinion_abstracts_idebate", "Opinion Abstracts (iDebate)",
          _opinion_source("opinion_abstracts/idebate:1.0.0"),
          IDEBATE_TEMPLATES, idebate_fields),
    _spec("wiki_lingua_english_en", "WikiLingua (English)",
          common.source("gem/wiki_lingua_english_en:1.1.0", test="test"), WIKI_LINGUA_TEMPLATES,
          wiki_lingua_fields),
]
