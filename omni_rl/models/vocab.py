"""Words the tiny tokenizer is trained on (the synthetic suite's vocabulary plus prompt phrasing)."""

CORPUS_WORDS = (
    "what which where when how many is are the a an of in on to and or colour color shape position "
    "red green blue yellow purple orange black white circle square triangle left right top bottom center "
    "middle up down moving direction flashes beeps tone pitch high low count number chart bar value read "
    "word words text image video audio sound clip click button screen point answer option options choose "
    "letter think then final box boxed cannot be determined unanswerable not enough information does show "
    "there no object cat dog sun moon star tree house car bird fish apple book cup door key ball hat "
    "zero one two three four five six seven eight nine ten plus minus times equals question user assistant "
    "system you are helpful please reason step briefly A B C D E"
).split()
