"""The retention probe: general-knowledge questions the base model answers correctly at start.

Asked every round; a drop means updates on new documents damaged what the model already knew
(catastrophic forgetting of pre-trained knowledge, the *locality* of knowledge editing).

SmolLM2-135M answers 126 of the 150 candidates correctly under the strict grader (20 of the first
28), measured with ``answer_and_grade`` on the base model (chat template, greedy, the default
evaluation settings: ``max_new_tokens`` 24, batch size 64, CPU float32); tiny-random answers none.
A simulation uses only the first ``2 × retention_probe`` candidates, so the order is part of the
probe: the first 28 are the original list and stay first.
"""

from __future__ import annotations

from multiseal.types import Question

GENERAL_KNOWLEDGE: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of the United Kingdom?", "London"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of Egypt?", "Cairo"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("Who developed the theory of relativity?", "Albert Einstein"),
    ("Who was the first president of the United States?", "George Washington"),
    ("What planet is known as the Red Planet?", "Mars"),
    ("What is the largest ocean on Earth?", "Pacific Ocean"),
    ("What gas do plants absorb from the air?", "carbon dioxide"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What is the freezing point of water in degrees Celsius?", "0"),
    ("How many days are there in a week?", "seven"),
    ("How many continents are there?", "seven"),
    ("In which year did World War II end?", "1945"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("What is the tallest mountain in the world?", "Mount Everest"),
    ("What language is spoken in Brazil?", "Portuguese"),
    ("What is the currency of Japan?", "yen"),
    ("Which animal is known as the king of the jungle?", "lion"),
    ("What is the boiling point of water in degrees Celsius?", "100"),
    ("What color is the sky on a clear day?", "blue"),
    ("Which organ pumps blood through the human body?", "heart"),
    # ---- added later: keep the 28 above first and in order (existing runs select from them)
    # capitals
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Australia?", "Canberra"),
    ("What is the capital of China?", "Beijing"),
    ("What is the capital of Greece?", "Athens"),
    ("What is the capital of Portugal?", "Lisbon"),
    ("What is the capital of Ireland?", "Dublin"),
    ("What is the capital of Austria?", "Vienna"),
    ("What is the capital of Sweden?", "Stockholm"),
    ("What is the capital of Norway?", "Oslo"),
    ("What is the capital of Finland?", "Helsinki"),
    ("What is the capital of Belgium?", "Brussels"),
    ("What is the capital of Hungary?", "Budapest"),
    ("What is the capital of the Czech Republic?", "Prague"),
    ("What is the capital of Argentina?", "Buenos Aires"),
    ("What is the capital of Mexico?", "Mexico City"),
    ("What is the capital of Peru?", "Lima"),
    ("What is the capital of Chile?", "Santiago"),
    ("What is the capital of Kenya?", "Nairobi"),
    ("What is the capital of South Korea?", "Seoul"),
    ("What is the capital of Thailand?", "Bangkok"),
    ("What is the capital of Cuba?", "Havana"),
    ("What is the capital of Iran?", "Tehran"),
    ("What is the capital of Iraq?", "Baghdad"),
    ("What is the capital of Vietnam?", "Hanoi"),
    ("What is the capital of the Philippines?", "Manila"),
    ("What is the capital of Indonesia?", "Jakarta"),
    ("What is the capital of Saudi Arabia?", "Riyadh"),
    ("What is the capital of Scotland?", "Edinburgh"),
    ("What is the capital of Afghanistan?", "Kabul"),
    ("What is the capital of New Zealand?", "Wellington"),
    ("What is the capital of the United States?", "Washington"),
    # authors
    ("Who wrote Pride and Prejudice?", "Jane Austen"),
    ("Who wrote Hamlet?", "Shakespeare"),
    ("Who wrote the Odyssey?", "Homer"),
    ("Who wrote Oliver Twist?", "Charles Dickens"),
    ("Who wrote the Harry Potter books?", "Rowling"),
    ("Who wrote The Hobbit?", "Tolkien"),
    ("Who wrote the poem The Raven?", "Edgar Allan Poe"),
    # artists, composers, scientists, leaders
    ("Who painted The Starry Night?", "Vincent van Gogh"),
    ("Who painted the ceiling of the Sistine Chapel?", "Michelangelo"),
    ("Who composed the Moonlight Sonata?", "Beethoven"),
    ("Who composed the opera The Magic Flute?", "Mozart"),
    ("Who discovered penicillin?", "Alexander Fleming"),
    ("Who formulated the laws of motion and universal gravitation?", "Isaac Newton"),
    ("Who invented the telephone?", "Alexander Graham Bell"),
    ("Who proposed the theory of evolution by natural selection?", "Charles Darwin"),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong"),
    ("Who was the sixteenth president of the United States?", "Abraham Lincoln"),
    ("Which French emperor was defeated at the Battle of Waterloo?", "Napoleon"),
    ("Who was the first emperor of Rome?", "Augustus"),
    ("Who gave the famous I Have a Dream speech?", "Martin Luther King"),
    ("Who was the British prime minister during most of World War II?", "Winston Churchill"),
    ("Who became South Africa's first black president in 1994?", "Nelson Mandela"),
    ("Which Greek philosopher was the tutor of Alexander the Great?", "Aristotle"),
    ("Who sailed across the Atlantic to the Americas in 1492?", "Christopher Columbus"),
    ("Who developed the first polio vaccine?", "Jonas Salk"),
    ("Who is the king of the gods in Greek mythology?", "Zeus"),
    ("Who is the Greek god of the sea?", "Poseidon"),
    # space
    ("Which planet is closest to the Sun?", "Mercury"),
    ("Which planet is famous for its large rings?", "Saturn"),
    ("What star is at the center of our solar system?", "Sun"),
    ("What is the name of Earth's natural satellite?", "Moon"),
    ("Which planet is the farthest from the Sun?", "Neptune"),
    ("Which planet is known for its Great Red Spot?", "Jupiter"),
    # science and the body
    ("What is the chemical formula for water?", "H2O"),
    ("What is the chemical symbol for iron?", "Fe"),
    ("What is the chemical symbol for silver?", "Ag"),
    ("What is the chemical symbol for sodium?", "Na"),
    ("What gas do humans need to breathe to stay alive?", "oxygen"),
    ("What is the hardest natural substance?", "diamond"),
    ("What is the center of an atom called?", "nucleus"),
    ("Which subatomic particle has a negative charge?", "electron"),
    ("What force pulls objects toward the Earth?", "gravity"),
    ("What is the largest organ of the human body?", "skin"),
    ("Which organ of the human body is used for thinking?", "brain"),
    ("What process do plants use to make food from sunlight?", "photosynthesis"),
    ("What does a thermometer measure?", "temperature"),
    ("What instrument do astronomers use to look at distant stars?", "telescope"),
    ("Which element has the chemical symbol H?", "hydrogen"),
    ("What is the study of living things called?", "biology"),
    ("What vitamin does the skin make in sunlight?", "vitamin D"),
    # animals and nature
    ("What is the largest mammal in the world?", "blue whale"),
    ("What is the fastest land animal?", "cheetah"),
    ("What is the tallest animal in the world?", "giraffe"),
    ("What type of animal is a dolphin?", "mammal"),
    # colours
    ("What color is grass?", "green"),
    ("What color is snow?", "white"),
    # geography and places
    ("What is the largest country in the world by area?", "Russia"),
    ("What is the largest continent?", "Asia"),
    ("In which country are the Pyramids of Giza?", "Egypt"),
    ("In which city is the Eiffel Tower?", "Paris"),
    ("In which city is the Statue of Liberty?", "New York"),
    ("In which city is the Colosseum?", "Rome"),
    ("In which country is the Taj Mahal?", "India"),
    ("In which country is the Great Wall?", "China"),
    ("In which country is Machu Picchu?", "Peru"),
    ("Which country is famous for kangaroos?", "Australia"),
    ("What language is spoken in Mexico?", "Spanish"),
    ("What language is spoken in Germany?", "German"),
    ("Which river flows through London?", "Thames"),
    ("Which river flows through Paris?", "Seine"),
    ("Which river flows through Egypt?", "Nile"),
    ("Which country has a maple leaf on its flag?", "Canada"),
    ("What is the currency of the United States?", "dollar"),
    ("What is the currency of the United Kingdom?", "pound"),
    ("What is the currency of India?", "rupee"),
    ("What is the largest hot desert in the world?", "Sahara"),
    ("What is the frozen continent at the South Pole?", "Antarctica"),
    ("In which US state is Hollywood?", "California"),
    ("What is the largest country in South America?", "Brazil"),
    ("In which country did the ancient Olympic Games begin?", "Greece"),
    # history, culture, everyday
    ("In which year did World War I begin?", "1914"),
    ("In which year did humans first land on the Moon?", "1969"),
    ("Which ship sank in 1912 after hitting an iceberg?", "Titanic"),
    ("Which musical instrument has 88 keys?", "piano"),
    ("Which sport is played at Wimbledon?", "tennis"),
    ("Which sport uses a bat, a ball and wickets?", "cricket"),
    ("What is frozen water called?", "ice"),
    ("What do bees collect from flowers to make honey?", "nectar"),
    ("How many hours are there in a day?", "24"),
    ("How many minutes are there in an hour?", "60"),
    ("How many legs does a spider have?", "8"),
)


def probe_questions() -> list[Question]:
    """The built-in candidates, as questions with ids ``p00``, ``p01``…"""
    return [Question(f"p{i:02d}", q, a, (), kind="probe") for i, (q, a) in enumerate(GENERAL_KNOWLEDGE)]


def select_probe(candidates: list[Question], correct: list[bool], size: int) -> list[Question]:
    """The first ``size`` candidates the base model got right (in built-in order, so reproducible)."""
    return [q for q, ok in zip(candidates, correct) if ok][:size]
