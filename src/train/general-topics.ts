/**
 * A general-topic source for KL data that works offline (protocol.md §7.13: the study's KL set is 1000
 * general-topic chats, released only encrypted; a substitute must not be another narrow domain). The
 * chat model itself writes one question per (topic, style) from the built-in list of everyday topics
 * below, then answers it. The list leaves out the study's three narrow domains (medicine and health,
 * money and finance, extreme and risky sports) so the KL term does not anchor the trained domain.
 */
import { RunInputError } from "./inputs.js";

export const EVERYDAY_TOPICS: readonly string[] = [
  "cooking weeknight dinners",
  "baking bread",
  "growing vegetables in a small garden",
  "caring for houseplants",
  "cleaning and tidying a home",
  "simple home repairs",
  "choosing and arranging furniture",
  "looking after a cat",
  "training a dog",
  "birdwatching",
  "stargazing and astronomy",
  "how weather works",
  "world geography",
  "ancient civilisations",
  "the history of the printing press",
  "painting with watercolours",
  "taking better photographs",
  "music theory basics",
  "learning to play the guitar",
  "classic films",
  "choosing a novel to read",
  "writing poetry",
  "grammar and punctuation",
  "learning a foreign language",
  "mathematical puzzles",
  "everyday physics",
  "chemistry in the kitchen",
  "how plants grow",
  "life in the oceans",
  "volcanoes and earthquakes",
  "dinosaurs",
  "how computers work",
  "learning to program",
  "using a smartphone",
  "how the internet works",
  "writing a polite email",
  "preparing for a job interview",
  "managing time and to-do lists",
  "study techniques",
  "board games",
  "chess openings",
  "crossword and logic puzzles",
  "knitting",
  "woodworking for beginners",
  "caring for clothes and laundry",
  "table manners and etiquette",
  "keeping in touch with friends",
  "using public transport",
  "planning a road trip",
  "camping with children",
  "basic car maintenance",
  "fixing a bicycle puncture",
  "recycling and composting",
  "saving energy at home",
  "famous buildings and architecture",
  "visiting museums",
  "holiday traditions around the world",
  "introductory philosophy",
  "Greek mythology",
  "the history of space exploration",
  "great inventions",
  "making coffee and tea",
  "moving to a new home",
  "organising a birthday party",
  "public speaking",
];

/** Kinds of question, cycled after each pass through the topics so repeated topics get different questions. */
export const QUESTION_STYLES: readonly string[] = [
  "a practical how-to question",
  "a question asking for an explanation of how or why something works",
  "a question asking for a recommendation or suggestions",
  "a question comparing two options",
  "a beginner's question",
];

/** The topic and style of row `index` (topics cycle first, then styles). */
export function topicFor(index: number, topics: readonly string[] = EVERYDAY_TOPICS): { topic: string; style: string } {
  if (topics.length === 0)
    throw new RunInputError({ field: "topics", file: "", message: "topics: the list is empty; give at least one topic" });
  return { topic: topics[index % topics.length]!, style: QUESTION_STYLES[Math.floor(index / topics.length) % QUESTION_STYLES.length]! };
}

/** The instruction that asks the chat model for one question. */
export function questionPrompt(topic: string, style: string): string {
  return `Write ${style} that a person might ask an AI assistant about ${topic}. Reply with the question only, on one line, without quotes or any preamble.`;
}

/** The model's reply reduced to one question: first non-empty line, surrounding quotes and list markers removed. */
export function cleanQuestion(reply: string): string {
  const line =
    reply
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "") ?? "";
  return line
    .replace(/^(question:\s*|[-*•]\s+|\d+[.)]\s+)/i, "")
    .replace(/^["'“”]+|["'“”]+$/g, "")
    .trim();
}
