"""A Pygments lexer for `.nn` files: `pygmentize -l nnspec spec.nn`, and ```nn fences in docs.

Registered through the `pygments.lexers` entry point in pyproject.toml; Pygments is
imported only here. The words come from nnspec/highlight.py (the registries), as the
TextMate grammar's do.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String,
                            Whitespace)

from nnspec.highlight import NAME, NUMBER, WORDS

__all__ = ["NNSpecLexer"]


class NNSpecLexer(RegexLexer):
    """nnspec model specs: layers, losses, optimizers and training settings."""

    name = "nnspec"
    aliases = ["nnspec", "nn", "nn-fragment", "nn-warning", "nn-error"]  # the fences docs/language.md uses
    filenames = ["*.nn"]
    mimetypes = ["text/x-nnspec"]
    url = "https://github.com/nnspec/nnspec"

    tokens = {
        "root": [
            # a label first: the whitespace rule would eat the indentation that `^` needs
            (rf"^([ \t]*)({NAME})([ \t]*)(:)", bygroups(Whitespace, Name.Label, Whitespace, Punctuation)),
            (r"[ \t\f]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"', String.Double, "string"),
            (rf"(let)([ \t]+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Constant)),
            (rf"(block)([ \t]+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"(model)([ \t]+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (words(WORDS["section"], prefix=r"\b", suffix=r"\b"), Keyword.Declaration),
            (rf"({NAME})([ \t]*)(=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (words(WORDS["constant"], prefix=r"\b", suffix=r"\b"), Keyword.Constant),
            (words(WORDS["graph"], prefix=r"\b", suffix=r"\b"), Keyword.Pseudo),
            (words(WORDS["layer"], prefix=r"\b", suffix=r"\b"), Name.Builtin),
            (words(WORDS["setting"], prefix=r"\b", suffix=r"\b"), Keyword.Reserved),
            (words(WORDS["function"], prefix=r"\b", suffix=r"\b"), Name.Function.Magic),
            (NUMBER, Number),
            (NAME, Name),
            (r"[{}\[\](),]", Punctuation),
            (r"[=:]", Operator),
        ],
        "string": [
            (r'\\.', String.Escape),
            (r'"', String.Double, "#pop"),
            (r'\n', Whitespace, "#pop"),  # unterminated: the error is nnspec's (E004), not the lexer's
            (r'[^"\\\n]+', String.Double),
        ],
    }
