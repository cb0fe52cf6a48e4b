"""Hand-written mathruler cases, grouped by answer family: ``FAMILIES[name] = [(gold, response, expected), ...]``.

Used by ``test_mathruler_families.py`` and, as the default suite, by ``scripts/bench_mathruler.py``. Each family mixes
positives and negatives; ``expected`` is the intended mathruler score (1 = equivalent, 0 = not).
"""

from __future__ import annotations

# a worked solution with many intermediate math expressions and intermediate boxes
_SOLUTION = (
    "Let the legs be $a = 3$ and $b = 4$. By Pythagoras, $c^2 = a^2 + b^2 = 9 + 16 = 25$, so $c = \\boxed{5}$.\n"
    "The area is $\\frac{1}{2}ab = \\frac{1}{2} \\cdot 3 \\cdot 4 = 6$, and the perimeter is $3 + 4 + 5 = 12$.\n"
    "The inradius satisfies $r = \\frac{\\text{Area}}{s}$ with $s = \\frac{12}{2} = 6$, hence $r = \\frac{6}{6}$.\n"
    "Checking with $r = \\frac{a + b - c}{2} = \\frac{3 + 4 - 5}{2}$ confirms it. "
)
_THINK = "<think>Try $x = 2$: then $2x + 1 = 5$, so maybe \\boxed{5}? No, recheck the question.</think>\n"

NUMBERS = [  # decimal commas and thousands separators in free text, currency symbols
    ("1000.99", "The total comes to 1000,99 after tax.", 1),
    ("2.74", "Prix : 2,74 $ au total", 1),
    ("1000.99", "So she pays 1,000.99€ in the end.", 1),
    ("0.25", "The probability is 0,25", 1),
    ("1,5", "\\boxed{1.5}", 1),
    ("2500", "\\boxed{\\$2{,}500}", 1),
    ("2500", "The car costs $2,500.", 1),
    ("12.5", "\\boxed{12{,}5}", 1),
    ("1234", "\\boxed{1,234}", 1),
    ("1000000", "That is 1 000 000 people.", 1),
    ("45", "\\boxed{45 €}", 1),
    ("1.234", "\\boxed{1,234}", 0),  # a comma before three digits groups thousands
    ("1000.99", "The total comes to 1000,98 after tax.", 0),
    ("2.74", "It costs 2,47 €.", 0),
    ("1000.99", "\\boxed{1000,99}", 0),  # inside LaTeX a comma separates list items
    ("250", "The car costs $2,500.", 0),
]

RELATIONS = [  # relations and inequalities in their different spellings
    ("x \\geq 5", "\\boxed{x >= 5}", 1),
    ("x \\geq 5", "\\boxed{x \\ge 5}", 1),
    ("x \\geq 5", "\\boxed{x ≥ 5}", 1),
    ("x \\geq 5", "\\boxed{5 \\leq x}", 1),
    ("x \\neq 3", "\\boxed{x != 3}", 1),
    ("x < 2", "\\boxed{x \\lt 2}", 1),
    ("x \\le -1", "\\boxed{x \\leqslant -1}", 1),
    ("x \\geq 5", "\\boxed{[5, \\infty)}", 1),
    ("2 < x \\leq 7", "\\boxed{(2, 7]}", 1),
    ("y > 2", "Thus $y \\gt 2$.", 1),
    ("x \\geq 5", "\\boxed{x > 5}", 0),
    ("x \\neq 3", "\\boxed{x = 3}", 0),
    ("x \\leq 4", "\\boxed{x < 4}", 0),
    ("x \\leq 4", "\\boxed{x \\geq 4}", 0),
    ("x \\geq 5", "\\boxed{5}", 0),
    ("x \\geq 5", "\\boxed{x \\geq 6}", 0),
]

MATRICES = [  # pmatrix / bmatrix / array, entry-wise equivalence
    ("\\begin{pmatrix}1/2\\\\3\\end{pmatrix}", "\\boxed{\\begin{bmatrix}0.5\\\\3\\end{bmatrix}}", 1),
    ("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
     "\\boxed{\\left[\\begin{array}{cc}1 & 2 \\\\ 3 & 4\\end{array}\\right]}", 1),
    ("\\begin{pmatrix} \\sqrt{2} \\\\ 1 \\end{pmatrix}",
     "\\boxed{\\begin{pmatrix} \\frac{2}{\\sqrt{2}} \\\\ 1 \\end{pmatrix}}", 1),
    ("\\begin{bmatrix}1 & 0\\\\0 & 1\\end{bmatrix}", "\\boxed{\\begin{pmatrix}1 & 0\\\\0 & 1\\\\\\end{pmatrix}}", 1),
    ("\\begin{pmatrix} x & 2x \\end{pmatrix}", "\\boxed{\\begin{bmatrix} x & x + x \\end{bmatrix}}", 1),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "The vector is $\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}$.", 1),
    ("-2", "\\boxed{\\begin{vmatrix}1 & 2\\\\3 & 4\\end{vmatrix}}", 1),  # vmatrix is a determinant
    ("\\begin{pmatrix}0 & 0\\\\0 & 0\\end{pmatrix}", "\\boxed{\\begin{bmatrix}0&0\\\\0&0\\end{bmatrix}}", 1),
    ("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\boxed{\\begin{pmatrix}1 & 2 \\\\ 3 & 5\\end{pmatrix}}", 0),
    ("\\begin{pmatrix}1/2\\\\3\\end{pmatrix}", "\\boxed{\\begin{bmatrix}0.5 & 3\\end{bmatrix}}", 0),  # row vs column
    ("\\begin{pmatrix}1\\\\2\\\\3\\end{pmatrix}", "\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", 0),
    ("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\boxed{\\begin{pmatrix}2 & 1 \\\\ 4 & 3\\end{pmatrix}}", 0),
    ("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\boxed{\\begin{vmatrix}1 & 2 \\\\ 3 & 4\\end{vmatrix}}", 0),
    ("\\begin{pmatrix} x & 2x \\end{pmatrix}", "\\boxed{\\begin{bmatrix} x & x^2 \\end{bmatrix}}", 0),
]

DISPLAY_OR_PLAIN = [  # the final answer in display math or plain text, no box
    ("9", "So we get\n\\[ 9 \\]", 1),
    ("9", "Hence $$9$$", 1),
    ("9", "The result is \\( 9 \\).", 1),
    ("9", "Adding the two parts, so the answer is $9$.", 1),
    ("9", "We simplify the sum.\n9", 1),
    ("\\frac{1}{2}", "Multiplying out we get\n\\[\n\\frac{2}{4}\n\\]", 1),
    ("x^2+1", "Expanding gives\nx^2 + 1", 1),
    ("12", "Therefore, there are 12 distinct sequences.", 1),
    ("2/3", "so the probability is 2/3. Hope that helps!", 1),
    ("(7, 6)", "The solution is the pair $(7, 6)$.", 1),
    ("34", "Final Answer: The largest $n$ is 34.", 1),
    ("-2, 1", "The roots are $-2$ and $1$.", 1),
    ("9", "Adding the two parts, so the answer is $8$.", 0),
    ("3", "Therefore there are 4 ways.", 0),
    ("9", "So we get\n\\[ 10 \\]", 0),
    ("(7, 6)", "The solution is the pair $(6, 7)$.", 0),
]

WORKED_SOLUTIONS = [  # long solutions: the last box is the answer, earlier boxes and math are intermediate
    ("1", _SOLUTION + "Therefore $r = \\boxed{1}$.", 1),
    ("5", _SOLUTION + "Therefore $r = \\boxed{1}$.", 0),  # an intermediate box is not the answer
    ("0.5", _SOLUTION + "The ratio of $r$ to $s - 4$ is $\\boxed{\\dfrac{1}{2}}$.", 1),
    ("1", _THINK + _SOLUTION + "So $r = \\boxed{1}$.", 1),
    ("5", _THINK + _SOLUTION + "So $r = \\boxed{1}$.", 0),  # a box inside the reasoning does not count
    ("1", _SOLUTION + "So $r = \\boxed{1}$. We double-checked this with 3 other triangles.", 1),
    ("12", _SOLUTION + "Final Answer: The final answer is $12$. I hope it is correct.", 1),
    ("1, -2", _SOLUTION + "The roots are $\\boxed{-2}$ and $\\boxed{1}$.", 1),
    ("4", _SOLUTION + "It is either $\\boxed{3}$ or $\\boxed{4}$.", 0),  # a hedge is not an answer
    ("14916", _SOLUTION + "So $N = \\boxed{14{,}916}$.", 1),
    ("1", "<think>" + _SOLUTION + "so $r = \\boxed{1}$", 0),  # cut off inside the reasoning
    ("6", _SOLUTION + "The area is $\\boxed{6}$ and that is all.", 1),
]

SUMS_AND_PRODUCTS = [  # literal bounds are evaluated; symbolic bounds need the same limits and equivalent summands
    ("55", "\\boxed{\\sum_{i=1}^{10} i}", 1),
    ("\\sum_{k=1}^{4} k^2", "The total is $\\boxed{30}$.", 1),
    ("24", "\\boxed{\\prod_{k=1}^{4} k}", 1),
    ("\\sum_{k=1}^{5} 2^k", "\\boxed{62}", 1),
    ("\\sum_{k=1}^{n} \\frac{1}{k(k+1)}", "\\boxed{\\sum_{k=1}^{n} \\frac{1}{k^2 + k}}", 1),
    ("S_n = \\sum_{j=0}^{n} \\binom{n}{j} x^j", "$$S_n = \\sum_{j=0}^{n} x^j \\binom{n}{j}$$", 1),
    ("\\prod_{k=1}^{n} 2k", "\\boxed{\\prod^{n}_{k=1} k \\cdot 2}", 1),
    ("\\sum_{k=1}^{\\infty} \\frac{1}{2^k}", "\\boxed{\\sum\\limits_{k=1}^{\\infty} 2^{-k}}", 1),
    ("56", "\\boxed{\\sum_{i=1}^{10} i}", 0),
    ("\\sum_{k=1}^{n} k", "\\boxed{\\sum_{k=0}^{n-1} k}", 0),  # other limits
    ("\\sum_{k=1}^{n} \\frac{1}{k^2}", "\\boxed{\\sum_{k=1}^{n} \\frac{1}{k}}", 0),
    ("\\sum_{k=1}^{n} (k + 1)", "\\boxed{\\sum_{k=1}^{n} k + 1}", 0),  # the summand is k: (sum of k) + 1
    ("\\prod_{k=1}^{n} k", "\\boxed{\\prod_{k=1}^{n} (k+1)}", 0),
    ("55", "\\boxed{\\sum_{k=1}^{10} i}", 0),  # i is not the index here
]

GOLD_BOXES = [  # the boxed answer of a gold: its trailing run of boxes, or an unclosed last box
    ("\\boxed{3} apples and \\boxed{4} pears", "\\boxed{3, 4}", 1),
    ("(a) \\boxed{3}\n(b) \\boxed{4}", "\\boxed{3} and \\boxed{4}", 1),
    ("$$\\boxed{2}, \\boxed{3}, \\boxed{5}, \\boxed{7}$$", "The primes are $2, 3, 5, 7$.", 1),
    ("\\boxed{2} look look look look \\boxed{7}", "\\boxed{7}", 1),
    ("\\boxed{2} look look look look \\boxed{7}", "\\boxed{2, 7}", 0),  # words but no separator: not one list
    (_SOLUTION + "So $r = \\boxed{1}$.", "\\boxed{1}", 1),  # far from the earlier box: the last one
    (_SOLUTION + "So $r = \\boxed{1}$.", "\\boxed{5, 1}", 0),
    ("The area is \\boxed{\\frac{1}{2}", "\\boxed{0.5}", 1),  # an unclosed box: the rest of the gold
    ("So $x = \\boxed{3", "\\boxed{3}", 1),
    ("So $x = \\boxed{3", "\\boxed{4}", 0),
]

FAMILIES: dict[str, list[tuple[str, str, int]]] = {
    "numbers": NUMBERS,
    "relations": RELATIONS,
    "matrices": MATRICES,
    "display-or-plain": DISPLAY_OR_PLAIN,
    "worked-solutions": WORKED_SOLUTIONS,
    "sums-and-products": SUMS_AND_PRODUCTS,
    "gold-boxes": GOLD_BOXES,
}
