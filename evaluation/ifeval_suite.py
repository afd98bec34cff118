"""The built-in IFEval-style suite: prompts with verifiable constraints checked by the
rewards package's `if` reward (constraint kinds in `rewards/builtin/ifeval.py`).

A row scores the fraction of its constraints met, so pass@1 (score 1 = all met) is
IFEval's strict prompt-level accuracy and mean@n its instruction-level accuracy averaged
per prompt. `meta.difficulty` is the number of constraints. Written here, not downloaded.
"""
from __future__ import annotations

from core.data.schema import Row

PROMPTS: list[tuple[str, list[dict]]] = [
    ('Describe the sea in at most 30 words, using only lowercase letters.',
     [{'kind': 'max_words', 'n': 30}, {'kind': 'lowercase'}]),
    ('Write a haiku about autumn leaves. Do not use any commas.',
     [{'kind': 'no_commas'}, {'kind': 'max_words', 'n': 25}]),
    ('List exactly three benefits of walking as markdown bullet points.',
     [{'kind': 'bullet_count', 'n': 3}]),
    ('Explain what a compiler does in at least 40 words.',
     [{'kind': 'min_words', 'n': 40}]),
    ("Give a one-sentence definition of gravity that includes the words 'mass' and 'attraction'.",
     [{'kind': 'include_keywords', 'keywords': ['mass', 'attraction']}, {'kind': 'max_words', 'n': 40}]),
    ('Return a JSON object with the keys "name" and "age" for a fictional person. Output only the JSON.',
     [{'kind': 'json_format'}]),
    ('Write a short product slogan for a bicycle in ALL CAPITAL LETTERS.',
     [{'kind': 'uppercase'}, {'kind': 'max_words', 'n': 15}]),
    ("Describe a rainy day without using the words 'wet' or 'umbrella'.",
     [{'kind': 'exclude_keywords', 'keywords': ['wet', 'umbrella']}, {'kind': 'min_words', 'n': 10}]),
    ('Write two paragraphs about coffee, separated by a blank line.',
     [{'kind': 'paragraph_count', 'n': 2}]),
    ("Start your answer with 'Certainly:' and then name a primary colour.",
     [{'kind': 'starts_with', 'phrase': 'Certainly:'}]),
    ("Name a planet and end your answer with the exact phrase 'Is there anything else?'",
     [{'kind': 'ends_with', 'phrase': 'Is there anything else?'}]),
    ('Write a poem about the moon with a title wrapped in double angular brackets, like <<title>>.',
     [{'kind': 'title'}]),
    ('Explain recursion in under 200 characters.',
     [{'kind': 'max_chars', 'n': 200}]),
    ("Write a sentence about cats that uses the word 'cat' at least 3 times.",
     [{'kind': 'keyword_frequency', 'keyword': 'cat', 'n': 3}]),
    ('List exactly two fruits as bullet points, all in lowercase.',
     [{'kind': 'bullet_count', 'n': 2}, {'kind': 'lowercase'}]),
    ('Summarise the plot of a fairy tale in no more than 50 words and without commas.',
     [{'kind': 'max_words', 'n': 50}, {'kind': 'no_commas'}]),
    ('Output a JSON list of three prime numbers and nothing else.',
     [{'kind': 'json_format'}]),
    ("Describe your favourite meal in at least 25 words and mention 'salt'.",
     [{'kind': 'min_words', 'n': 25}, {'kind': 'include_keywords', 'keywords': ['salt']}]),
    ("Write a greeting in ALL CAPS that ends with '!!'",
     [{'kind': 'uppercase'}, {'kind': 'ends_with', 'phrase': '!!'}]),
    ("Give four tips for better sleep as bullet points, without using the word 'phone'.",
     [{'kind': 'bullet_count', 'n': 4}, {'kind': 'exclude_keywords', 'keywords': ['phone']}]),
    ('Write three paragraphs about trees, separated by blank lines, in at least 60 words.',
     [{'kind': 'paragraph_count', 'n': 3}, {'kind': 'min_words', 'n': 60}]),
    ('Answer in lowercase and under 20 words: what is the capital of France?',
     [{'kind': 'lowercase'}, {'kind': 'max_words', 'n': 20}, {'kind': 'include_keywords', 'keywords': ['paris']}]),
    ("Start with 'Note:' and explain what a variable is in under 40 words.",
     [{'kind': 'starts_with', 'phrase': 'Note:'}, {'kind': 'max_words', 'n': 40}]),
    ('Write a title in double angular brackets, like <<title>>, then one sentence about rivers without commas.',
     [{'kind': 'title'}, {'kind': 'no_commas'}]),
]


def ifeval_rows() -> list[Row]:
    return [Row(id=f"ifeval-{i:02d}", messages=[{"role": "user", "content": prompt}], reasoning="off",
                reward={"type": "if", "constraints": constraints},
                meta={"source": "builtin-ifeval", "difficulty": len(constraints)})
            for i, (prompt, constraints) in enumerate(PROMPTS)]
